"""Genomic Benchmarks datasets: the package's one-file-per-sequence cache, read once into a compact `.npz`.

Layout written by `genomic_benchmarks.loc2seq.download_dataset`:
`<root>/<name>/{train,test}/{positive,negative}/<id>.txt`, one sequence per file (positive = label 1).
The first load walks those files (~154k for `human_enhancers_ensembl`) and writes
`cache_dir()/gb_<name>_<path digest>.npz` holding the concatenated base codes, lengths, labels and ids.
Later loads read only the `.npz`. The cache is rebuilt when the stamp of the dataset folders changes
(modification times of the name, split and class directories — `download_dataset` re-creates them);
when the source folder is gone, the cache is used as is. Without the download, `_gb_intervals` builds the same
arrays from the interval lists and a local genome (`data.genome`), through `write_cache` / `read_cache`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import N_CODE, InvalidSequenceError, encode_many
from harness.data.readers import SequenceFileError
from harness.paths import DataNotFoundError, cache_dir

OFFICIAL_SPLITS = ("train", "test")
CLASSES = (("positive", 1), ("negative", 0))


def default_root() -> Path:
    """The genomic_benchmarks package's own cache folder (`~/.genomic_benchmarks`)."""
    from genomic_benchmarks.utils.paths import CACHE_PATH  # light module: pathlib + yarl only

    return Path(CACHE_PATH)


def fetch_command(name: str, root: Path) -> str:
    """The shell command that downloads `name` into `root` (needs the network)."""
    return (
        'python -c "from genomic_benchmarks.loc2seq import download_dataset; '
        f"download_dataset('{name}', version=0, dest_path='{root}')\""
    )


def download(name: str, root: Path) -> None:
    """Fetch `name` into `root/name` with the genomic_benchmarks package (Zenodo cloud cache)."""
    from genomic_benchmarks.loc2seq import download_dataset

    download_dataset(name, version=0, dest_path=root)


def cache_path(name: str, root: Path) -> Path:
    key = hashlib.sha256(str((root / name).expanduser().resolve()).encode()).hexdigest()[:12]
    return cache_dir() / f"gb_{name}_{key}.npz"


def load_official(name: str, root: Path, allow_download: bool = False, hint: str = "") -> dict[str, SeqDataset]:
    """The official `{"train", "test"}` splits of Genomic Benchmarks dataset `name` under `root`."""
    folder, cache = root / name, cache_path(name, root)
    if not folder.is_dir() and not cache.exists() and allow_download:
        try:
            download(name, root)
        except Exception as err:  # network, DNS, HTTP and unpacking errors all mean the same here
            raise DataNotFoundError(_missing_message(name, root, cache, hint, f"download failed: {err!r}")) from err
    if folder.is_dir():
        stamp = folder_stamp(folder)
        if not (cache.exists() and stored_stamp(cache) == stamp):
            write_cache(cache, _read_folder(folder), stamp)
    elif not cache.exists():
        raise DataNotFoundError(_missing_message(name, root, cache, hint))
    return read_cache(cache)


def _missing_message(name: str, root: Path, cache: Path, hint: str, reason: str = "") -> str:
    return (
        f"Genomic Benchmarks dataset {name!r} not found: no folder {root / name} and no cache {cache}"
        f"{' (' + reason + ')' if reason else ''}. Fetch it (needs the network) with\n"
        f"  {fetch_command(name, root)}\n"
        "or rerun with --set data.download=true; or place the files as "
        f"{root / name}/{{train,test}}/{{positive,negative}}/<id>.txt (one sequence per file), "
        "or point --set data.root=DIR at the folder holding it; or build it from its interval lists on a local "
        "genome with --set data.genome=/path/hg38.fa (see tasks/_gb_intervals.py)." + (f" {hint}" if hint else "")
    )


def folder_stamp(folder: Path) -> str:
    """Modification times of the dataset, split and class directories (a few stats, no file walk)."""
    dirs = [folder, *(folder / s for s in OFFICIAL_SPLITS)]
    dirs += [folder / s / c for s in OFFICIAL_SPLITS for c, _ in CLASSES]
    return ";".join(f"{d.relative_to(folder)}={d.stat().st_mtime_ns if d.is_dir() else 'missing'}" for d in dirs)


def stored_stamp(cache: Path) -> str:
    with np.load(cache) as npz:
        return str(npz["stamp"])


def _read_folder(folder: Path) -> dict[str, np.ndarray]:
    """Walk the one-file-per-sequence layout → flat arrays (codes concatenated in row order)."""
    seqs: list[str] = []
    files: list[Path] = []
    labels: list[int] = []
    split_of: list[int] = []
    for split_index, split in enumerate(OFFICIAL_SPLITS):
        for cls, label in CLASSES:
            directory = folder / split / cls
            if not directory.is_dir():
                raise DataNotFoundError(
                    f"{directory} is missing: expected {folder}/{{train,test}}/{{positive,negative}}/<id>.txt"
                )
            names = sorted(e.name for e in os.scandir(directory) if e.name.endswith(".txt"))
            for file_name in names:
                path = directory / file_name
                text = path.read_bytes().decode("latin-1").strip()
                if not text:
                    raise SequenceFileError(f"{path}: file is empty (expected one sequence)")
                seqs.append(text)
                files.append(path)
            labels += [label] * len(names)
            split_of += [split_index] * len(names)
    try:
        codes, lengths = encode_many(seqs)
    except InvalidSequenceError as err:
        raise SequenceFileError(
            f"{files[err.index]}: invalid character {err.char!r} at position {err.position + 1} "
            "(only A, C, G, T, N are allowed)"
        ) from err
    flat = codes[np.arange(codes.shape[1])[None, :] < lengths[:, None]]
    ids = [f"{p.parent.parent.name}/{p.parent.name}/{p.stem}" for p in files]
    return {
        "codes": flat,
        "lengths": lengths,
        "labels": np.asarray(labels, dtype=np.int8),
        "split": np.asarray(split_of, dtype=np.int8),
        "ids": np.asarray(ids, dtype=np.bytes_),
    }


def write_cache(cache: Path, arrays: dict[str, np.ndarray], stamp: str) -> None:
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as handle:
        np.savez(handle, stamp=np.asarray(stamp), **arrays)
    os.replace(tmp, cache)


def read_cache(cache: Path) -> dict[str, SeqDataset]:
    """The `.npz` cache → `{"train", "test"}` datasets, N-padded to each split's longest sequence."""
    with np.load(cache) as npz:
        flat, lengths, labels, split, ids = (npz[k] for k in ("codes", "lengths", "labels", "split", "ids"))
    bounds = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    out = {}
    for split_index, name in enumerate(OFFICIAL_SPLITS):
        rows = np.flatnonzero(split == split_index)  # contiguous: splits are written one after the other
        lo, hi = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
        out[name] = SeqDataset(
            (pad_rows(flat[bounds[lo] : bounds[hi]], lengths[lo:hi]),),
            labels[lo:hi].astype(np.float32),
            ids[lo:hi].astype(str),
        )
    return out


def pad_rows(flat: np.ndarray, lengths: np.ndarray) -> Seqs:
    """Concatenated codes of consecutive rows → N-padded `Seqs` (row-major mask fill, no index arrays)."""
    width = int(lengths.max(initial=0))
    codes = np.full((len(lengths), width), N_CODE, dtype=np.uint8)
    codes[np.arange(width)[None, :] < lengths[:, None]] = flat
    return Seqs(codes, lengths.astype(np.int32))
