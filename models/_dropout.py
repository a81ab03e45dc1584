"""Dropout with masks that are cheap to draw on the CPU, for `models.kmer_attention`.

torch's CPU dropout draws one float per element with `bernoulli_` (about 10 ns each on one thread here: a fifth of
kmer_attention's training step went to it). `Dropout` draws 16 random bits per element instead (an int64 from
torch's seeded generator gives four) and drops an element where its bits fall below round(p · 2^16): p is rounded
to a multiple of 2^-16 (0.1 → 0.100006) and kept elements are scaled by 1 / (1 − that p), so the expectation is
exact (in bf16 the scale is rounded to bf16, as torch's own dropout does). Backward multiplies by the same mask.
On other devices, under `torch.compile` (Inductor draws its own fused masks) and outside training it is
`F.dropout`. A seed gives the same masks every run, though not the masks `nn.Dropout` draws from it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BITS = 16  # random bits per element


def drop_threshold(p: float) -> int:
    """Elements whose `BITS` random bits (as an unsigned number) fall below this are dropped."""
    return round(p * 2**BITS)


def keep_scale(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`shape` of 0 (probability `drop_threshold(p) / 2^16`, independently) and 1 / (1 − that) elsewhere, in `dtype`.

    Each element's bits u (a signed 16-bit number, from torch's generator) are clamped to [c − 1, c] with
    c = threshold − 2^15 and shifted to 0 (u < c) or 1, then scaled: vectorised passes on 16-bit integers (bool
    masks take torch's slower, unvectorised kernels). A 16-bit `dtype` (bf16, fp16) is scaled in place: 1 times the
    scale's 16 bits, read as `dtype`, is the scale, with no conversion pass; others convert, then scale."""
    n = math.prod(shape)
    threshold = drop_threshold(p)
    cut = threshold - 2 ** (BITS - 1)
    scale = 2**BITS / (2**BITS - threshold)
    words = torch.empty(-(-n // 4), dtype=torch.int64, device=device).random_(-(2**63), None)  # all 64 bits random
    keep = words.view(torch.int16)[:n].clamp(min=cut - 1, max=cut).sub_(cut - 1)  # (n,) 0 or 1
    if dtype in (torch.bfloat16, torch.float16):
        scale_bits = int(torch.tensor(scale, dtype=dtype).view(torch.int16))  # positive: the sign bit is 0
        return keep.mul_(scale_bits).view(dtype).view(shape)
    return keep.view(shape).to(dtype).mul_(scale)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout(x, p, training)`, with masks from `keep_scale` on the CPU in eager mode."""
    if not training or drop_threshold(p) == 0:  # p < 2^-17 drops nothing
        return x
    if x.device.type != "cpu" or torch.compiler.is_compiling() or drop_threshold(p) >= 2**BITS:
        return F.dropout(x, p, True)
    return x * keep_scale(x.shape, p, x.dtype, x.device)


class Dropout(nn.Dropout):
    """`nn.Dropout` (same `p`, no state) drawing its CPU masks with `keep_scale`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
