"""Readers and writers for the two standard chromatin-profile file formats: the DeepSEA bundle and Basset's HDF5.

DeepSEA (Zhou & Troyanskaya 2015), `deepsea_train_bundle.v0.9.tar.gz`, folder `deepsea_train/`:

- `train.mat` is MATLAB v7.3, i.e. HDF5. MATLAB stores arrays column-major, so h5py sees every dimension reversed;
  as h5py (row-major) sees them: `trainxdata (1000, 4, N)` = (position, base, sample) and `traindata (919, N)` =
  (label, sample), N = 4,400,000. The sample axis is the LAST one.
- `valid.mat` and `test.mat` are MATLAB v5, read whole by `scipy.io.loadmat`: `validxdata (8000, 4, 1000)` =
  (sample, base, position) and `validdata (8000, 919)`; `testxdata (455024, 4, 1000)`, `testdata (455024, 919)`.
- The base axis is ordered A, G, C, T — not A, C, G, T.

Sources relied on (public loaders of the real files, not the data itself): tensor2tensor's DeepSEA problem reads
`trainxdata[:, :, i]` as one (1000, 4) sample and `validxdata[i].transpose([1, 0])`; Selene's example config uses
`MatFileSampler(sequence_key=trainxdata, sequence_batch_axis=2, sequence_alphabet_axis=1, targets_batch_axis=1)`;
several Keras loaders (e.g. the DanQ scripts) do `np.transpose(trainxdata, (2, 0, 1))` → (N, 1000, 4),
`traindata.T` → (N, 919) and note `validxdata` as (8000, 4, 1000). The A, G, C, T order is stated by DanQ's author
for the DeepSEA data (github.com/uci-cbcl/DanQ issue #6: "The DeepSEA authors made the data with the order
A,G,C,T"). Labels: rows 1–125 DNase, 126–815 TF, 816–919 histone marks (DeepSEA supplementary table 1, as in
kipoi/models' `predictor_names.txt`).

Basset (Kelley et al. 2016), `encode_roadmap.h5` made by Basset's `seq_hdf5.py`: `train_in`, `valid_in`,
`test_in` of shape `(N, 4, 1, 600)` (sample, base A/C/G/T, 1, position; `seq_hdf5.py` reshapes its flat one-hot
to `(N, 4, 1, L)` for Torch), `train_out`/`valid_out`/`test_out` `(N, 164)`, and `target_labels` (164 names).
Basset encodes N as 0.25 in every channel; DeepSEA as all zeros. Both decode here to code N.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np
import scipy.io

from harness.data.encode import N_CODE

DEEPSEA_BASES = "AGCT"  # channel order of the DeepSEA bundle
BASSET_BASES = "ACGT"
DEEPSEA_SPLITS = {"train": ("train.mat", "trainxdata", "traindata"),
                  "val": ("valid.mat", "validxdata", "validdata"),
                  "test": ("test.mat", "testxdata", "testdata")}  # fmt: skip
BASSET_SPLITS = {"train": ("train_in", "train_out"), "val": ("valid_in", "valid_out"), "test": ("test_in", "test_out")}
Pair = tuple[np.ndarray, np.ndarray]  # codes (B, L) uint8, labels (B, C)
_MULTI = 255  # table entry: more than one channel ≥ 0.5
MATLAB_USERBLOCK = 512  # MATLAB v7.3 files start with a 512-byte text header before the HDF5 superblock


class FormatError(ValueError):
    """A file does not have the layout its format promises; the message names the file and the array."""


@dataclass(frozen=True)
class Layout:
    """Where the axes of a stored one-hot array are: letters N (sample), C (base), L (position), 1 (singleton)."""

    x_axes: str  # e.g. "LCN" (DeepSEA train.mat via h5py), "NCL" (DeepSEA v5 .mat), "NC1L" (Basset)
    y_axes: str  # "CN" (label, sample) or "NC"
    bases: str  # channel order, e.g. "AGCT"


DEEPSEA_TRAIN = Layout("LCN", "CN", DEEPSEA_BASES)
DEEPSEA_V5 = Layout("NCL", "NC", DEEPSEA_BASES)
BASSET = Layout("NC1L", "NC", BASSET_BASES)


def channel_codes(bases: str) -> np.ndarray:
    """`(4,)` uint8: the harness code (A,C,G,T = 0..3) of each stored channel."""
    if sorted(bases) != sorted("ACGT"):
        raise ValueError(f"base order must be a permutation of ACGT, got {bases!r}")
    return np.array(["ACGT".index(b) for b in bases], dtype=np.uint8)


def onehot_to_codes(x: np.ndarray, bases: str) -> np.ndarray:
    """One-hot `(B, 4, L)` (any numeric dtype) → codes `(B, L)` uint8: the channel with the largest value (the first
    of ties); a column without a base ≥ 0.5 (all zeros, or Basset's uniform 0.25) is N.

    Decoded through a 16-entry table of which channels are ≥ 0.5 (uint8 work only, ~10× faster than an argmax);
    the rare columns with two or more such channels fall back to the argmax."""
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"expected one-hot (B, 4, L), got shape {x.shape}")
    channels = channel_codes(bases)
    table = np.full(16, _MULTI, dtype=np.uint8)
    table[0] = N_CODE
    table[[1, 2, 4, 8]] = channels
    hot = (x >= 0.5).view(np.uint8)
    codes = table[hot[:, 0] | (hot[:, 1] << 1) | (hot[:, 2] << 2) | (hot[:, 3] << 3)]
    multi = codes == _MULTI
    if multi.any():
        codes[multi] = channels[np.argmax(x.transpose(0, 2, 1)[multi], axis=1)]
    return codes


def codes_to_onehot(codes: np.ndarray, bases: str) -> np.ndarray:
    """Codes `(B, L)` → one-hot `(B, 4, L)` uint8 in channel order `bases`; N is an all-zero column."""
    table = np.zeros((5, 4), dtype=np.uint8)
    for channel, code in enumerate(channel_codes(bases)):
        table[code, channel] = 1
    return np.ascontiguousarray(table[codes].transpose(0, 2, 1))


def to_ncl(block: np.ndarray, axes: str) -> np.ndarray:
    """An array stored with axes `axes` (see `Layout`) → `(N, C, L)`."""
    if block.ndim != len(axes):
        raise ValueError(f"array of shape {block.shape} does not match axes {axes!r}")
    squeezed = block.reshape([n for n, a in zip(block.shape, axes, strict=True) if a != "1"])
    letters = axes.replace("1", "")
    return np.transpose(squeezed, [letters.index(a) for a in "NCL"])


def to_nc(block: np.ndarray, axes: str) -> np.ndarray:
    """Labels stored as `axes` ("CN" or "NC") → `(N, C)`."""
    return block.T if axes == "CN" else block


def sample_axis(axes: str) -> int:
    return axes.index("N")


# --- block readers (what the cache converts from) ----------------------------------------------------------------


class Blocks(Protocol):
    """A split of a source file read in consecutive row blocks: `n` rows of `length` bp and `n_labels` labels."""

    path: Path
    n: int
    length: int
    n_labels: int

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]: ...  # codes (B, L) uint8, labels (B, C)


def checked_block(path: Path, x_key: str, y_key: str, onehot: np.ndarray, labels: np.ndarray, lo: int) -> None:
    """Raise a FormatError naming the file when a block (any axis order) has one-hot values outside [0, 1] or
    labels other than 0/1 (what a corrupted file usually shows)."""
    if onehot.size and (onehot.min() < 0 or onehot.max() > 1):
        raise FormatError(f"{path}: {x_key} rows from {lo} are not one-hot (values outside [0, 1]); corrupted file?")
    integral = np.issubdtype(labels.dtype, np.integer) or np.array_equal(labels, np.round(labels))
    if labels.size and not (integral and labels.min() >= 0 and labels.max() <= 1):
        raise FormatError(f"{path}: {y_key} rows from {lo} hold values other than 0/1; corrupted file?")


class HDF5Blocks:
    """Rows of a one-hot `x_key` and label `y_key` array stored with axes `layout` in an HDF5 file (a context
    manager: the file is open inside `with`)."""

    def __init__(self, path: Path, x_key: str, y_key: str, layout: Layout) -> None:
        self.path, self.x_key, self.y_key, self.layout = Path(path), x_key, y_key, layout
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise FormatError(f"{self.path}: not a readable HDF5 file: {err}") from err
        if x_key not in self._file or y_key not in self._file:
            self._file.close()
            raise FormatError(f"{self.path}: missing dataset {x_key} or {y_key} (found {sorted(self._file)})")
        x, y = self._file[x_key], self._file[y_key]
        c_axis, n_y = layout.x_axes.index("C"), sample_axis(layout.y_axes)
        n = x.shape[sample_axis(layout.x_axes)] if x.ndim == len(layout.x_axes) else -1
        if n < 0 or x.shape[c_axis] != 4 or y.ndim != 2 or y.shape[n_y] != n:
            self._file.close()
            raise FormatError(
                f"{self.path}: expected {x_key} with axes {layout.x_axes} (N sample, C base = 4, L position) and "
                f"{y_key} with axes {layout.y_axes}, got {x.shape} and {y.shape}"
            )
        self.n = x.shape[sample_axis(layout.x_axes)]
        self.length = x.shape[layout.x_axes.index("L")]
        self.n_labels = y.shape[1 - n_y]

    def __enter__(self) -> HDF5Blocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            x = self._file[self.x_key][tuple(slice(lo, hi) if a == "N" else slice(None) for a in self.layout.x_axes)]
            y = self._file[self.y_key][tuple(slice(lo, hi) if a == "N" else slice(None) for a in self.layout.y_axes)]
        except (OSError, RuntimeError) as err:  # h5py: truncated or corrupted chunks
            raise FormatError(f"{self.path}: cannot read {self.x_key}/{self.y_key} rows {lo}:{hi}: {err}") from err
        checked_block(self.path, self.x_key, self.y_key, x, y, lo)  # on the blocks as stored: contiguous, faster
        return onehot_to_codes(to_ncl(x, self.layout.x_axes), self.layout.bases), to_nc(y, self.layout.y_axes)


class MatV5Blocks:
    """A MATLAB v5 split (`valid.mat` / `test.mat`), read whole by scipy (v5 has no lazy reader), decoded in blocks."""

    def __init__(self, path: Path, split: str) -> None:
        _, self.x_key, self.y_key = DEEPSEA_SPLITS[split]
        self.path = Path(path)
        self._x, self._y = read_deepsea_v5(self.path, split)
        self.n, _, self.length = self._x.shape
        self.n_labels = self._y.shape[1]

    def __enter__(self) -> MatV5Blocks:
        return self

    def __exit__(self, *exc: object) -> None:
        del self._x, self._y

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        onehot, labels = self._x[lo:hi], self._y[lo:hi]
        checked_block(self.path, self.x_key, self.y_key, onehot, labels, lo)
        return onehot_to_codes(onehot, DEEPSEA_BASES), labels


# --- DeepSEA ---------------------------------------------------------------------------------------------------------


def read_deepsea_v5(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`valid.mat` / `test.mat` (MATLAB v5) → one-hot `(N, 4, L)` and labels `(N, C)` as stored (read whole)."""
    _, x_key, y_key = DEEPSEA_SPLITS[split]
    try:
        mat = scipy.io.loadmat(str(path), variable_names=[x_key, y_key])
    except (ValueError, NotImplementedError, OSError, TypeError) as err:
        raise FormatError(f"{path}: neither HDF5 (MATLAB v7.3) nor a readable MATLAB v5 file with {x_key}/{y_key}: "
                          f"{err}") from err  # fmt: skip
    missing = [k for k in (x_key, y_key) if k not in mat]
    if missing:
        raise FormatError(f"{path}: missing variable(s) {', '.join(missing)} (found {sorted(mat)})")
    x, y = mat[x_key], mat[y_key]
    if x.ndim != 3 or x.shape[1] != 4 or y.ndim != 2 or len(y) != len(x):
        raise FormatError(f"{path}: expected {x_key} (N, 4, L) and {y_key} (N, C), got {x.shape} and {y.shape}")
    return to_ncl(x, DEEPSEA_V5.x_axes), y


def deepsea_blocks(path: Path, split: str) -> HDF5Blocks | MatV5Blocks:
    """A DeepSEA split file as blocks, whichever MATLAB version it is: v7.3 (HDF5, axes LCN, as the bundle's
    train.mat) or v5 (axes NCL, as its valid.mat / test.mat)."""
    _, x_key, y_key = DEEPSEA_SPLITS[split]
    if not h5py.is_hdf5(path):
        return MatV5Blocks(path, split)
    return HDF5Blocks(path, x_key, y_key, DEEPSEA_TRAIN)


def write_deepsea_bundle(folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write `{"train", "val", "test"}: (codes (N, L), labels (N, C))` as the DeepSEA bundle does: train.mat as
    MATLAB v7.3 (HDF5 with the 512-byte MATLAB header, arrays stored transposed), valid/test.mat as MATLAB v5."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (codes, labels) in splits.items():
        filename, x_key, y_key = DEEPSEA_SPLITS[split]
        onehot = codes_to_onehot(codes, DEEPSEA_BASES)  # (N, 4, L)
        if split == "train":
            _write_matlab73(folder / filename, {x_key: onehot.transpose(2, 1, 0), y_key: labels.astype(np.uint8).T})
        else:
            scipy.io.savemat(folder / filename, {x_key: onehot, y_key: labels.astype(np.uint8)}, format="5")


def _write_matlab73(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An HDF5 file laid out like MATLAB's `save -v7.3` (header userblock, MATLAB_class attributes)."""
    with h5py.File(path, "w", userblock_size=MATLAB_USERBLOCK) as f:
        for name, array in arrays.items():
            f.create_dataset(name, data=array).attrs["MATLAB_class"] = np.bytes_(array.dtype.name)
    _write_matlab_header(path)


def _write_matlab_header(path: Path) -> None:
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: regbench synthetic HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")


def write_deepsea_train_streamed(path: Path, n: int, length: int, n_labels: int, blocks: Iterable[Pair]) -> None:
    """`train.mat` as `write_deepsea_bundle` writes it, from consecutive `(codes (B, L), labels (B, C))` blocks
    (for sets too large to hold as one-hot in memory)."""
    _, x_key, y_key = DEEPSEA_SPLITS["train"]
    with h5py.File(path, "w", userblock_size=MATLAB_USERBLOCK) as f:
        x = f.create_dataset(x_key, shape=(length, 4, n), dtype=np.uint8)
        y = f.create_dataset(y_key, shape=(n_labels, n), dtype=np.uint8)
        for ds in (x, y):
            ds.attrs["MATLAB_class"] = np.bytes_("uint8")
        lo = 0
        for codes, labels in blocks:
            x[:, :, lo : lo + len(codes)] = codes_to_onehot(codes, DEEPSEA_BASES).transpose(2, 1, 0)
            y[:, lo : lo + len(codes)] = labels.astype(np.uint8).T
            lo += len(codes)
    if lo != n:
        raise ValueError(f"{path}: blocks held {lo} rows, expected {n}")
    _write_matlab_header(path)


# --- Basset ----------------------------------------------------------------------------------------------------------


def check_basset(path: Path, f: h5py.File) -> tuple[int, list[str]]:
    """Validate an open Basset HDF5 file; return its length L and label names."""
    missing = [k for pair in BASSET_SPLITS.values() for k in pair if k not in f]
    if missing:
        raise FormatError(f"{path}: missing dataset(s) {', '.join(missing)} (found {sorted(f)})")
    lengths = set()
    for x_key, y_key in BASSET_SPLITS.values():
        x, y = f[x_key], f[y_key]
        if x.ndim != 4 or x.shape[1] != 4 or x.shape[2] != 1 or y.ndim != 2 or len(y) != len(x):
            raise FormatError(f"{path}: expected {x_key} (N, 4, 1, L) and {y_key} (N, C), got {x.shape}, {y.shape}")
        lengths.add(x.shape[3])
    n_labels = {f[y].shape[1] for _, y in BASSET_SPLITS.values()}
    if len(lengths) != 1 or len(n_labels) != 1:
        raise FormatError(f"{path}: splits disagree on length {sorted(lengths)} or label count {sorted(n_labels)}")
    stored = f["target_labels"][()] if "target_labels" in f else []
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in stored]
    if names and len(names) != n_labels.pop():
        raise FormatError(f"{path}: target_labels has {len(names)} names for {f['train_out'].shape[1]} labels")
    return lengths.pop(), names


def write_basset(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], names: list[str]) -> None:
    """Write `{"train", "val", "test"}: (codes (N, L), labels (N, C))` as Basset's `seq_hdf5.py` lays it out."""
    write_basset_streamed(path, {s: (len(c), [(c, y)]) for s, (c, y) in splits.items()}, names)


def write_basset_streamed(path: Path, splits: dict[str, tuple[int, Iterable[Pair]]], names: list[str]) -> None:
    """`write_basset` from `{split: (n rows, consecutive (codes (B, L), labels (B, C)) blocks)}`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for split, (n, blocks) in splits.items():
            x_key, y_key = BASSET_SPLITS[split]
            lo = 0
            for codes, labels in blocks:
                if lo == 0:
                    x = f.create_dataset(x_key, shape=(n, 4, 1, codes.shape[1]), dtype=np.uint8)
                    y = f.create_dataset(y_key, shape=(n, labels.shape[1]), dtype=np.uint8)
                x[lo : lo + len(codes)] = codes_to_onehot(codes, BASSET_BASES)[:, :, None, :]  # (B, 4, 1, L)
                y[lo : lo + len(codes)] = labels.astype(np.uint8)
                lo += len(codes)
            if lo != n:
                raise ValueError(f"{path}: {split} blocks held {lo} rows, expected {n}")
        f.create_dataset("target_labels", data=np.array([n.encode() for n in names]))
