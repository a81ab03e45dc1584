"""A lazy, HDF5-backed sequence dataset: one-hot arrays stay on disk and `take(idx)` reads only the rows asked for.

`take` sorts the requested rows, merges them into runs of consecutive rows and reads each run as one hyperslab
(h5py fancy indexing is slow and requires sorted, unique indices), then restores the requested order. Labels are
read once, on first access, as uint8 0/1 (the DeepSEA train set's 4.4M × 919 labels are 4 GB as uint8, 16 GB as
float32); `Batch.y` is float32 as the protocol asks. `bytes_read` counts the one-hot bytes read so far.

The tasks no longer train from it (they read the memory-mapped cache of `tasks._chromatin_cache`, converted by the
block readers of `tasks._chromatin_formats`); it stays as the direct, conversion-free reader and as the "before"
of `bench/chromatin_io.py`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from harness.data import encode
from harness.spec import Batch
from tasks._chromatin_formats import Layout, onehot_to_codes, sample_axis, to_nc, to_ncl

_LABEL_ROWS_PER_READ = 65536  # rows of labels per read when loading them


def runs(sorted_idx: np.ndarray) -> list[tuple[int, int]]:
    """Sorted, unique row indices → `[(start, stop)]` half-open runs of consecutive rows."""
    if sorted_idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_idx) != 1) + 1
    starts = sorted_idx[np.r_[0, breaks]]
    stops = sorted_idx[np.r_[breaks - 1, sorted_idx.size - 1]] + 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


class HDF5SeqDataset:
    """Rows of a one-hot `x_key` and label `y_key` array in an HDF5 file, stored with axes `layout`.

    `rows`: optional `(start, stop)` window of the file's rows this split covers (e.g. a carved validation tail).
    """

    def __init__(self, path: Path, x_key: str, y_key: str, layout: Layout, rows: tuple[int, int] | None = None) -> None:
        self.path, self.x_key, self.y_key, self.layout = Path(path), x_key, y_key, layout
        self._file: h5py.File | None = None
        x = self._h5[x_key]
        total = x.shape[sample_axis(layout.x_axes)]
        start, stop = rows if rows is not None else (0, total)
        if not 0 <= start <= stop <= total:
            raise ValueError(f"{self.path}:{x_key}: row window {rows} outside [0, {total}]")
        self.start, self.stop = start, stop
        self.length = x.shape[layout.x_axes.index("L")]
        self.bytes_read = 0
        self._labels: np.ndarray | None = None

    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}  # an open h5py handle cannot cross processes

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def ids(self) -> np.ndarray:
        return np.array([f"{self.x_key}:{i}" for i in range(self.start, self.stop)])

    @property
    def labels(self) -> np.ndarray:
        """`(N, C)` uint8 0/1, read in blocks on first access and kept."""
        if self._labels is None:
            y, axes = self._h5[self.y_key], self.layout.y_axes
            blocks = [
                to_nc(self._read(y, axes, lo, min(lo + _LABEL_ROWS_PER_READ, self.stop)), axes)
                for lo in range(self.start, self.stop, _LABEL_ROWS_PER_READ)
            ]
            self._labels = np.concatenate(blocks).astype(np.uint8) if blocks else np.zeros((0, y.shape[0]), np.uint8)
        return self._labels

    @staticmethod
    def _read(ds: h5py.Dataset, axes: str, lo: int, hi: int) -> np.ndarray:
        index = tuple(slice(lo, hi) if a == "N" else slice(None) for a in axes)
        return ds[index]

    def codes(self, idx: np.ndarray) -> np.ndarray:
        """Rows `idx` (positions within this split, any order) → codes `(B, L)` uint8."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.path}:{self.x_key}: row index out of range [0, {len(self)})")
        unique, inverse = np.unique(idx, return_inverse=True)
        x = self._h5[self.x_key]
        parts = []
        for lo, hi in runs(unique + self.start):
            block = self._read(x, self.layout.x_axes, lo, hi)
            self.bytes_read += block.nbytes
            parts.append(onehot_to_codes(to_ncl(block, self.layout.x_axes), self.layout.bases))
        codes = np.concatenate(parts) if parts else np.zeros((0, self.length), np.uint8)
        return codes[inverse]

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch:
        codes = self.codes(idx)
        lengths = np.full(len(codes), self.length)
        if reverse_complement:
            codes = encode.reverse_complement(codes, lengths)
        return Batch((codes, encode.mask_from_lengths(lengths, self.length)), self.labels[idx].astype(np.float32))

    def digest(self) -> str:
        """Shapes, dtypes and 64 sampled rows of one-hot and labels (the whole file is too large to hash)."""
        x, y = self._h5[self.x_key], self._h5[self.y_key]
        h = hashlib.sha256(f"{x.shape}{x.dtype}{y.shape}{y.dtype}{self.start}:{self.stop}".encode())
        sample = np.unique(np.linspace(0, max(len(self) - 1, 0), num=min(64, len(self))).astype(np.int64))
        h.update(self.codes(sample).tobytes())
        y_axes = self.layout.y_axes
        for i in sample + self.start:
            h.update(np.ascontiguousarray(to_nc(self._read(y, y_axes, i, i + 1), y_axes)).astype(np.uint8).tobytes())
        return h.hexdigest()[:16]
