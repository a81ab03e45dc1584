"""Attention over k-mer tokens, rolled up to base positions.

A k-mer model's token t covers bases `[t, t + k)` of a sequence of length L, so T = L - k + 1 tokens. With the
token→base incidence `S (L, T)` (`S[i, t] = 1` when base i lies in token t), a token map `A (T, T)` (rows: queries,
columns: keys; rows sum to 1) becomes the base map

    B = P A Q,   P = S / S.sum(1)  (L, T): a query base averages the rows of the tokens covering it,
                 Q = S.T / k       (T, L): a key token's weight is spread evenly over its k bases,

so every row of B still sums to 1 and `B.sum()` equals L. A CLS token (pooling="cls": the maps are
`(T + 1, T + 1)` with CLS first) is dropped before the roll-up, so there rows sum to 1 minus the attention paid
to CLS.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.spec import Encoder


def incidence(length: int, k: int) -> np.ndarray:
    """`S (L, T)`: 1 where base i lies in k-mer token t (T = L - k + 1)."""
    if not 1 <= k <= length:
        raise ValueError(f"k={k} must be between 1 and the sequence length {length}")
    bases, tokens = np.arange(length)[:, None], np.arange(length - k + 1)[None, :]
    return ((bases >= tokens) & (bases < tokens + k)).astype(np.float64)


def tokens_to_bases(att: np.ndarray, length: int, k: int) -> np.ndarray:
    """Token attention `(..., T, T)` → base attention `(..., L, L)`, T = L - k + 1 (see the module docstring)."""
    s = incidence(length, k)  # (L, T)
    if att.shape[-2:] != (s.shape[1], s.shape[1]):
        raise ValueError(
            f"attention maps of shape {att.shape} do not hold {s.shape[1]} tokens of a {length} bp, k={k} sequence"
        )
    p = s / s.sum(1, keepdims=True)  # (L, T)
    q = s.T / k  # (T, L)
    return p @ att @ q


def base_attention(encoder: Encoder, codes: torch.Tensor, mask: torch.Tensor) -> list[np.ndarray]:
    """Per sequence, its attention rolled up to bases: `(n_layers, H, L_b, L_b)`, L_b its length.

    `encoder` declares `has_attention_maps`, with `attention_maps(codes, mask) -> [(B, H, T', T')] per layer` and
    a k-mer size `k` (1 when the tokens are bases); T' = T + 1 when it prepends a CLS token, which is dropped here.
    """
    if not encoder.has_attention_maps:
        raise ValueError(f"{type(encoder).__name__} has no attention maps (attention_maps); use another method")
    k = encoder.k
    maps = (
        torch.stack([m.float() for m in encoder.eval().attention_maps(codes, mask)], 1).cpu().numpy()
    )  # (B, n, H, T', T')
    width_tokens = codes.shape[1] - k + 1
    has_cls = maps.shape[-1] == width_tokens + 1
    if has_cls:
        maps = maps[..., 1:, 1:]
    out = []
    for b, length in enumerate(mask.sum(1).tolist()):
        t = length - k + 1
        out.append(tokens_to_bases(maps[b, :, :, :t, :t], length, k).astype(np.float32))
    return out
