"""Banded (local) self-attention with memory linear in length, for `models.kmer_attention` with
`attention_window = W`: query i attends to the keys j with |i − j| <= W.

The sequence is cut into blocks of W queries; block n attends to the keys of blocks n − 1, n and n + 1 (3W keys),
masked to the band, so the scores take B x H x T x 3W floats instead of B x H x T x T (Longformer's sliding
window, Beltagy et al. 2020, "Longformer: the long-document transformer", arXiv:2004.05150, computed blockwise as in
BigBird's block-sparse attention). A window of at least T − 1 gives full attention.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Bias = Callable[[torch.Tensor], torch.Tensor]  # offsets rel = i − j (...) → (H, ...) added to the scores


def band_offsets(window: int, device: torch.device) -> torch.Tensor:
    """`rel (W, 3W)`: query a of a block minus key c of its three-block key span, i − j = a + W − c."""
    a = torch.arange(window, device=device)
    c = torch.arange(3 * window, device=device)
    return a[:, None] + window - c[None, :]


def banded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    window: int,
    bias: Bias | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """`q, k, v (B, H, T, D)`, `key_mask (B, T)` → `(B, H, T, D)`; a query without a real key in its band (padding
    far from the sequence) attends to itself only, so no row is empty (its output is padding, ignored later)."""
    B, H, T, D = q.shape
    w = window
    nb = -(-T // w)
    pad = nb * w - T
    qb = F.pad(q, (0, 0, 0, pad)).view(B, H, nb, w, D)  # (B, H, nb, W, D)
    kb, vb = (F.pad(t, (0, 0, w, pad + w)).unfold(2, 3 * w, w).transpose(-1, -2) for t in (k, v))  # (B,H,nb,3W,D)
    real = F.pad(key_mask, (w, pad + w), value=False).unfold(1, 3 * w, w)  # (B, nb, 3W)
    rel = band_offsets(w, q.device)  # (W, 3W)
    allowed = (rel.abs() <= w) & real[:, None, :, None, :]  # (B, 1, nb, W, 3W)
    allowed = allowed | (~allowed.any(-1, keepdim=True) & (rel == 0))
    mask: torch.Tensor = allowed
    if bias is not None:
        mask = bias(rel)[None, :, None].to(q.dtype).masked_fill(~allowed, float("-inf"))  # (B, H, nb, W, 3W)
    y = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=dropout_p)  # (B, H, nb, W, D)
    return y.reshape(B, H, nb * w, D)[:, :, :T]
