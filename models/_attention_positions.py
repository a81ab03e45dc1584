"""Relative position encodings for `models.kmer_attention`: they see only the distance i − j between a query and a
key, so attention does not change when the whole input shifts.

- relative: a learned scalar bias per head and log-spaced distance bucket, added to the attention scores (Raffel et
  al. 2020, "Exploring the limits of transfer learning with a unified text-to-text transformer", JMLR 21:140, T5).
  Bidirectional buckets: half for keys before the query, half after; exact distances below a quarter of the buckets,
  log-spaced up to `max_distance`, one bucket beyond. One table shared by every layer, as in T5.
- alibi: a fixed bias −slope_h · |i − j| with geometric slopes 2^(−8h/H) (Press et al. 2022, "Train short, test
  long: attention with linear biases enables input length extrapolation", ICLR; symmetric for an encoder).
- rotary: queries and keys rotated by their position (Su et al. 2024, "RoFormer: enhanced transformer with rotary
  position embedding", Neurocomputing 568:127063), so their dot product depends on i − j only.

A bias module maps offsets `rel = i − j` of any shape `(...)` to `(H, ...)`, so the same code serves full attention
(`rel (T, T)`) and banded attention (`rel (W, 3W)` per block).
"""

from __future__ import annotations

import math

import torch
from torch import nn

ABSOLUTE = ("learned", "sinusoidal", "none")  # added to the token embeddings (or nothing)
RELATIVE = ("relative", "alibi", "rotary")  # inside attention: depend on i − j only
POS_ENCODINGS = (*ABSOLUTE, *RELATIVE)


class RelativePositionBias(nn.Module):
    """T5's bucketed relative bias: `forward(rel (...) long) -> (H, ...)`."""

    def __init__(self, n_heads: int, n_buckets: int = 32, max_distance: int = 128) -> None:
        super().__init__()
        self.n_buckets, self.max_distance = n_buckets, max_distance
        self.table = nn.Embedding(n_buckets, n_heads)

    def bucket(self, rel: torch.Tensor) -> torch.Tensor:
        """Bucket ids `(...)` of offsets `rel = i − j` (T5's `_relative_position_bucket`, bidirectional)."""
        half = self.n_buckets // 2
        out = (rel < 0).long() * half  # keys after the query get the upper half
        dist = rel.abs()
        exact = half // 2
        log_bucket = (
            exact
            + (
                torch.log(dist.float().clamp(min=1) / exact) / math.log(self.max_distance / exact) * (half - exact)
            ).long()
        )
        return out + torch.where(dist < exact, dist, log_bucket.clamp(max=half - 1))

    def forward(self, rel: torch.Tensor) -> torch.Tensor:
        return self.table(self.bucket(rel)).movedim(-1, 0)  # (H, ...)


class AlibiBias(nn.Module):
    """ALiBi: `forward(rel (...)) -> (H, ...)` = −slope_h · |rel|, slopes 2^(−8 h / H) for h = 1..H."""

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        slopes = torch.tensor([2 ** (-8 * (h + 1) / n_heads) for h in range(n_heads)])
        self.register_buffer("slopes", slopes, persistent=False)

    def forward(self, rel: torch.Tensor) -> torch.Tensor:
        return -self.slopes.view(-1, *[1] * rel.dim()) * rel.abs().float()  # (H, ...)


def rotate(x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Rotary embedding of `x (B, H, T, D)` (D even) at positions `start .. start + T − 1`, pairs (d, d + D/2)."""
    d = x.shape[-1] // 2
    freq = 10000.0 ** (-torch.arange(d, device=x.device, dtype=torch.float32) / d)  # (D/2,)
    angle = (start + torch.arange(x.shape[-2], device=x.device, dtype=torch.float32))[:, None] * freq  # (T, D/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, H, T, D)
