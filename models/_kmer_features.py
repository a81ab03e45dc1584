"""Vectorised k-mer spectra: per sequence, the frequencies of all 4**k k-mers over ACGT.

Counting is one `np.bincount` over the flattened k-mer ids of a chunk of rows, offset by `row * 4**k`; rows are
returned as a sparse CSR matrix (a 1 kb sequence has at most ~1000 of the 4**k k-mers).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import sparse

from harness.data.encode import N_CODE
from harness.spec import Dataset

_CHUNK_CELLS = 1 << 24  # bound on rows × 4**k counted at once (128 MiB of int64 counts)


def kmer_spectrum(codes: np.ndarray, mask: np.ndarray, k: int) -> sparse.csr_matrix:
    """`codes (N, L) uint8`, `mask (N, L) bool` → k-mer frequencies `(N, 4**k)` float32 CSR.

    Column `sum_i code_i * 4**(k-1-i)` (A,C,G,T = 0..3). Only k-mers lying wholly on real positions and free of N
    are counted; each row is divided by its count (rows with no such k-mer stay zero).
    """
    n, width = codes.shape
    vocab = 4**k
    if width < k:
        return sparse.csr_matrix((n, vocab), dtype=np.float32)
    weights = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)  # (k,)
    chunk = max(1, _CHUNK_CELLS // vocab)
    parts = []
    for start in range(0, n, chunk):
        c = codes[start : start + chunk]
        windows = sliding_window_view(c, k, axis=1)  # (n_c, T, k)
        valid = sliding_window_view(mask[start : start + chunk], k, axis=1).all(-1)  # (n_c, T)
        valid &= ~(windows == N_CODE).any(-1)
        ids = windows.astype(np.int64) @ weights  # (n_c, T)
        flat = (ids + np.arange(len(c), dtype=np.int64)[:, None] * vocab)[valid]
        counts = np.bincount(flat, minlength=len(c) * vocab).reshape(len(c), vocab).astype(np.float32)  # (n_c, V)
        counts /= np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        parts.append(sparse.csr_matrix(counts))
    return sparse.vstack(parts, format="csr")


def dataset_spectra(dataset: Dataset, k: int, chunk: int = 4096) -> tuple[sparse.csr_matrix, np.ndarray]:
    """A sequence dataset → `(features (N, n_branches * 4**k) CSR, labels)`; branches' spectra concatenated."""
    rows = []
    for start in range(0, len(dataset), chunk):
        batch = dataset.take(np.arange(start, min(start + chunk, len(dataset))))
        pairs = zip(batch.inputs[0::2], batch.inputs[1::2], strict=True)  # (codes, mask) per branch
        rows.append(sparse.hstack([kmer_spectrum(c, m, k) for c, m in pairs], format="csr"))
    return sparse.vstack(rows, format="csr"), np.asarray(dataset.labels)
