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

from dataclasses import dataclass
from pathlib import Path

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
    """One-hot `(B, 4, L)` (any numeric dtype) → codes `(B, L)` uint8; a column without a base ≥ 0.5 (all zeros,
    or Basset's uniform 0.25) is N."""
    if x.ndim != 3 or x.shape[1] != 4:
        raise ValueError(f"expected one-hot (B, 4, L), got shape {x.shape}")
    codes = channel_codes(bases)[np.argmax(x, axis=1)]  # (B, L)
    codes[np.max(x, axis=1) < 0.5] = N_CODE
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


# --- DeepSEA ---------------------------------------------------------------------------------------------------------


def read_deepsea_v5(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`valid.mat` / `test.mat` (MATLAB v5) → codes `(N, L)` uint8, labels `(N, C)` float32 (read whole)."""
    _, x_key, y_key = DEEPSEA_SPLITS[split]
    try:
        mat = scipy.io.loadmat(str(path), variable_names=[x_key, y_key])
    except (ValueError, NotImplementedError, OSError) as err:
        raise FormatError(f"{path}: not a readable MATLAB v5 file with {x_key}/{y_key}: {err}") from err
    missing = [k for k in (x_key, y_key) if k not in mat]
    if missing:
        raise FormatError(f"{path}: missing variable(s) {', '.join(missing)} (found {sorted(mat)})")
    x, y = mat[x_key], mat[y_key]
    if x.ndim != 3 or x.shape[1] != 4 or y.ndim != 2 or len(y) != len(x):
        raise FormatError(f"{path}: expected {x_key} (N, 4, L) and {y_key} (N, C), got {x.shape} and {y.shape}")
    return onehot_to_codes(to_ncl(x, DEEPSEA_V5.x_axes), DEEPSEA_BASES), y.astype(np.float32)


def check_deepsea_train(path: Path, f: h5py.File) -> tuple[h5py.Dataset, h5py.Dataset]:
    """The `trainxdata (L, 4, N)` and `traindata (C, N)` datasets of an open `train.mat`, shape-checked."""
    _, x_key, y_key = DEEPSEA_SPLITS["train"]
    missing = [k for k in (x_key, y_key) if k not in f]
    if missing:
        raise FormatError(f"{path}: missing dataset(s) {', '.join(missing)} (found {sorted(f)})")
    x, y = f[x_key], f[y_key]
    if x.ndim != 3 or x.shape[1] != 4 or y.ndim != 2 or y.shape[1] != x.shape[2]:
        raise FormatError(
            f"{path}: expected {x_key} as (L, 4, N) and {y_key} as (C, N) (MATLAB v7.3 seen through h5py), "
            f"got {x.shape} and {y.shape}"
        )
    return x, y


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
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: regbench synthetic HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for split, (codes, labels) in splits.items():
            x_key, y_key = BASSET_SPLITS[split]
            f.create_dataset(x_key, data=codes_to_onehot(codes, BASSET_BASES)[:, :, None, :])  # (N, 4, 1, L)
            f.create_dataset(y_key, data=labels.astype(np.uint8))
        f.create_dataset("target_labels", data=np.array([n.encode() for n in names]))
