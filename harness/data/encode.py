"""Vectorised DNA encoding.

Sequences travel as `uint8` base codes A,C,G,T,N = 0..4 in padded `(N, L)` arrays with their lengths;
padding positions hold N (4) and are excluded by a mask. One-hot and k-mer ids are made in batch on the
device from those codes (`one_hot`, `kmer_ids`), never per character in Python.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

ALPHABET = "ACGTN"
N_CODE = 4
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
_INVALID = 255
MEMORY_ENV = "REGBENCH_MAX_BATCH_GB"  # bound on one tensor a model allocates for a batch (default 8 GiB)

_LUT = np.full(256, _INVALID, dtype=np.uint8)
for _code, _base in enumerate(ALPHABET):
    _LUT[ord(_base)] = _code
    _LUT[ord(_base.lower())] = _code


class InvalidSequenceError(ValueError):
    """A sequence holds a character outside ACGTN (case-insensitive)."""

    def __init__(self, index: int, position: int, char: str) -> None:
        self.index, self.position, self.char = index, position, char
        super().__init__(
            f"sequence {index}: invalid character {char!r} at position {position + 1} "
            "(only A, C, G, T, N are allowed, in either case)"
        )


class InputTooLongError(ValueError):
    """A sequence longer than the model takes; the message names the record, its length and the limit."""


def check_lengths(ids: Sequence[str], lengths: Sequence[int], limit: int | None, model: str, source: str) -> None:
    """Raise InputTooLongError naming the first record longer than `limit` bases (None: no limit)."""
    if limit is None:
        return
    lengths = np.asarray(lengths)
    bad = np.flatnonzero(lengths > limit)
    if bad.size:
        row = int(bad[0])
        raise InputTooLongError(
            f"{source}: record {ids[row]} has length {int(lengths[row])}, longer than model {model} takes "
            f"({limit} bases){f'; {bad.size} records are too long' if bad.size > 1 else ''}"
        )


class BatchTooLargeError(ValueError):
    """A batch whose tensors would exceed the memory limit (checked before allocating them)."""


def memory_limit() -> int:
    """Bytes one batch tensor may take: `$REGBENCH_MAX_BATCH_GB` GiB (default 8)."""
    value = os.environ.get(MEMORY_ENV, "8")
    try:
        gib = float(value)
    except ValueError:
        raise ValueError(f"{MEMORY_ENV}={value!r} is not a number of GiB") from None
    return int(gib * 2**30)


def check_batch_memory(nbytes: int, what: str) -> None:
    """Raise before allocating when `nbytes` exceeds `memory_limit()`, naming what and how much."""
    limit = memory_limit()
    if nbytes > limit:
        raise BatchTooLargeError(
            f"{what} of this batch would take {nbytes / 2**30:.1f} GiB, over the limit of {limit / 2**30:.1f} GiB "
            f"(${MEMORY_ENV}); use shorter sequences or a smaller train.batch_size / train.eval_batch_size"
        )


def encode(seq: str) -> np.ndarray:
    """One sequence → `(L,)` uint8 codes."""
    codes, _ = encode_many([seq])
    return codes[0, : len(seq)]


def encode_many(seqs: list[str] | tuple[str, ...], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sequences → `(codes (N, L) uint8, lengths (N,) int32)`, padded with N to the longest (or `pad_to`).

    Raises `InvalidSequenceError` naming the sequence index, position and character.
    """
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(lengths.max(initial=0)) if pad_to is None else pad_to
    if pad_to is not None and lengths.size and lengths.max() > pad_to:
        raise ValueError(f"sequence {int(lengths.argmax())} has length {int(lengths.max())} > pad_to={pad_to}")
    flat = _LUT[np.frombuffer("".join(seqs).encode("latin-1", errors="replace"), dtype=np.uint8)]
    bad = np.flatnonzero(flat == _INVALID)
    if bad.size:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        seq_index = int(np.searchsorted(starts, bad[0], side="right") - 1)
        position = int(bad[0] - starts[seq_index])
        raise InvalidSequenceError(seq_index, position, seqs[seq_index][position])
    codes = np.full((len(seqs), width), N_CODE, dtype=np.uint8)
    rows = np.repeat(np.arange(len(seqs)), lengths)
    cols = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    codes[rows, cols] = flat
    return codes, lengths.astype(np.int32)


def decode(codes: np.ndarray, length: int | None = None) -> str:
    """`(L,)` codes → string (first `length` positions)."""
    alphabet = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    return alphabet[codes[:length]].tobytes().decode()


def mask_from_lengths(lengths: np.ndarray, width: int) -> np.ndarray:
    """`(N,)` lengths → `(N, width)` bool mask, True on real bases."""
    return np.arange(width)[None, :] < np.asarray(lengths)[:, None]


def reverse_complement(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse-complement padded `(N, L)` codes; each row's real part stays left-aligned."""
    width = codes.shape[1]
    src = np.asarray(lengths)[:, None] - 1 - np.arange(width)[None, :]  # (N, L)
    valid = src >= 0
    out = np.full_like(codes, N_CODE)
    gathered = np.take_along_axis(codes, np.clip(src, 0, width - 1), axis=1)
    out[valid] = _COMPLEMENT[gathered[valid]]
    return out


def one_hot(codes: torch.Tensor, mask: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`codes (B, L)` integer → one-hot `(B, 4, L)`; N and padding are all-zero columns."""
    table = torch.zeros(5, 4, dtype=dtype, device=codes.device)
    table[:4] = torch.eye(4, dtype=dtype, device=codes.device)
    x = table[codes.long()]  # (B, L, 4)
    if mask is not None:
        x = x * mask.unsqueeze(-1).to(dtype)
    return x.transpose(1, 2).contiguous()


def kmer_vocab_size(k: int) -> int:
    """Ids: 0 = padding, 1..4**k = k-mers over ACGT, 4**k + 1 = any k-mer containing N."""
    return 4**k + 2


def kmer_ids(codes: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping k-mers: `codes (B, L)`, `mask (B, L)` → `(ids (B, L-k+1) long, kmer_mask (B, L-k+1))`.

    A k-mer is real when all its k bases are real (not padding); see `kmer_vocab_size` for the ids.
    """
    if codes.shape[1] < k:
        raise ValueError(f"sequence length {codes.shape[1]} is shorter than k={k}")
    c = codes.long()
    windows = c.unfold(1, k, 1)  # (B, L-k+1, k)
    weights = 4 ** torch.arange(k - 1, -1, -1, device=codes.device)
    has_n = (windows == N_CODE).any(-1)
    ids = 1 + (windows.clamp(max=3) * weights).sum(-1)
    ids = torch.where(has_n, torch.full_like(ids, 4**k + 1), ids)
    kmask = mask.unfold(1, k, 1).all(-1)
    ids = torch.where(kmask, ids, torch.zeros_like(ids))
    return ids, kmask
