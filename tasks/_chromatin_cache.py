"""One-time conversion of chromatin-profile files into a sample-first, memory-mapped layout, and its `Dataset`.

DeepSEA's `train.mat` stores the sample axis last, so reading one sequence touches 4,000 scattered bytes (about
5 sequences/s by random index, `bench/chromatin_io.py`). Each split of a source file is converted once, block by
block (a tqdm bar), into `$REGBENCH_CACHE/chromatin/<file stem>-<x_key>-<key>/`:

- `codes.npy`: `(N, L)` uint8 base codes (A, C, G, T, N = 0..4, as `harness.data.encode`), one row per sequence;
- `labels.npy`: `(N, C)` uint8 0/1 (not bit-packed: `Dataset.labels` is then the memory map itself, with no
  unpacking of the whole matrix, at 8× the disk of packed bits: 4 GB for DeepSEA's 4.4 M × 919);
- `ids.npy`: `(N,)` bytes row ids, only for builds that name their rows (`cached_build(ids=...)`, e.g. the
  `chrom:start-end` bins of `chromatin.peaks`); other splits' ids are `prefix:row`;
- `meta.json`: `CACHE_VERSION`, the source path and keys, its fingerprint, shapes, the id prefix and a blake2b digest
  of every code and label byte written.

`<key>` hashes the resolved source path and keys. Invalidation: the cache is used only when `meta.json` has this
`CACHE_VERSION` and the source's current fingerprint — size, mtime (ns) and a blake2b hash of the first and last MiB
(reading 2 MiB, cheap for multi-GB files; a same-size in-place edit is caught by the mtime) — and the arrays have the
recorded shapes; otherwise the split is converted again. A conversion writes into a `.tmp-*` folder next to the
target and renames it into place only when complete, so a killed or failed one leaves nothing a later run trusts
(failed ones remove their folder; killed ones leave a `.tmp-*` that is never read).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from harness.data import encode
from harness.paths import cache_dir
from harness.spec import Batch
from tasks._chromatin_formats import Blocks, FormatError

CACHE_VERSION = 1
FINGERPRINT_BYTES = 1 << 20  # hashed from each end of the source
BLOCK_BYTES = 64 << 20  # one-hot bytes read per conversion block


def fingerprint(path: Path) -> str:
    """`size:mtime_ns:blake2b(first and last MiB)` of a file."""
    stat = path.stat()
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_BYTES))
        f.seek(max(stat.st_size - FINGERPRINT_BYTES, 0))
        h.update(f.read(FINGERPRINT_BYTES))
    return f"{stat.st_size}:{stat.st_mtime_ns}:{h.hexdigest()}"


def cache_folder(path: Path, x_key: str, y_key: str) -> Path:
    key = hashlib.sha256(f"{path.resolve()}\0{x_key}\0{y_key}".encode()).hexdigest()[:12]
    return cache_dir() / "chromatin" / f"{path.stem}-{x_key}-{key}"


def cached_split(
    path: Path, x_key: str, y_key: str, open_blocks: Callable[[], AbstractContextManager[Blocks]], id_prefix: str
) -> MemmapSeqDataset:
    """The converted split `x_key`/`y_key` of `path`, converting it first when there is no valid cache for the
    file as it is now. `open_blocks()` opens the source (only called to convert); ids are `f"{id_prefix}:{row}"`."""
    source = {"source": str(path.resolve()), "x_key": x_key, "y_key": y_key, "fingerprint": fingerprint(path)}
    return cached_build(cache_folder(path, x_key, y_key), source, open_blocks, id_prefix)


def cached_build(
    folder: Path,
    source: dict[str, Any],
    open_blocks: Callable[[], AbstractContextManager[Blocks]],
    id_prefix: str = "",
    ids: Callable[[], np.ndarray] | None = None,
) -> MemmapSeqDataset:
    """The split cached in `folder` for `source` (a JSON-able description whose every entry must match), built
    from `open_blocks()` when missing or stale. `ids()`: `(N,)` str row ids written to `ids.npy`; None: ids are
    `f"{id_prefix}:{row}"`."""
    if valid(folder, source):
        return MemmapSeqDataset(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}-"))
    try:
        with open_blocks() as blocks:
            meta = convert(blocks, tmp, folder.name)
        if ids is not None:
            np.save(tmp / "ids.npy", np.asarray(ids()).astype(bytes))
        extra = {"id_prefix": id_prefix, "ids_file": ids is not None}
        (tmp / "meta.json").write_text(json.dumps({**source, **meta, **extra}, indent=1))
        install(tmp, folder, source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return MemmapSeqDataset(folder)


def convert(blocks: Blocks, out: Path, what: str) -> dict[str, Any]:
    """Write `codes.npy` and `labels.npy` in `out` from `blocks` (`what` names it on the progress bar); returns
    shapes, version and content digest."""
    n, length, n_labels = blocks.n, blocks.length, blocks.n_labels
    codes = np.lib.format.open_memmap(out / "codes.npy", mode="w+", dtype=np.uint8, shape=(n, length))
    labels = np.lib.format.open_memmap(out / "labels.npy", mode="w+", dtype=np.uint8, shape=(n, n_labels))
    digest = hashlib.blake2b(f"{n},{length},{n_labels}".encode(), digest_size=16)
    rows = max(1, BLOCK_BYTES // (4 * max(length, 1)))
    with tqdm(total=n, desc=f"converting {what}", unit="seq", unit_scale=True, leave=False) as bar:
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            block_codes, block_labels = blocks.read(lo, hi)
            codes[lo:hi], labels[lo:hi] = block_codes, block_labels
            digest.update(codes[lo:hi].tobytes())
            digest.update(labels[lo:hi].tobytes())
            bar.update(hi - lo)
    codes.flush()
    labels.flush()
    del codes, labels
    return {"version": CACHE_VERSION, "n": n, "length": length, "n_labels": n_labels, "digest": digest.hexdigest()}


def install(tmp: Path, folder: Path, source: dict[str, str]) -> None:
    """Rename the finished `tmp` to `folder`, replacing a stale one; if another process installed a valid copy
    first, keep that one."""
    if folder.exists():
        if valid(folder, source):
            return
        stale = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".stale-{folder.name}-"))
        os.replace(folder, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:
        if not valid(folder, source):
            raise


def read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def valid(folder: Path, source: dict[str, str]) -> bool:
    """Whether `folder` holds a complete conversion of `source` (path, keys, fingerprint) at this CACHE_VERSION."""
    meta = read_meta(folder)
    if meta is None or meta.get("version") != CACHE_VERSION or any(meta.get(k) != v for k, v in source.items()):
        return False
    try:
        codes = np.load(folder / "codes.npy", mmap_mode="r")
        labels = np.load(folder / "labels.npy", mmap_mode="r")
    except (OSError, ValueError):
        return False
    return codes.shape == (meta["n"], meta["length"]) and labels.shape == (meta["n"], meta["n_labels"])


class MemmapSeqDataset:
    """A converted split: `take(idx)` copies rows `idx` (any order) out of the memory-mapped `(N, L)` codes and
    `(N, C)` labels, so memory holds only the batch and the pages the OS caches. Pickles without the maps (they are
    reopened on first use), so Ray workers map the same files instead of receiving copies."""

    def __init__(self, folder: Path) -> None:
        meta = read_meta(folder)
        if meta is None:
            raise FormatError(f"{folder}: no meta.json; not a converted chromatin split")
        self.folder, self.meta = folder, meta
        self.length: int = meta["length"]
        self._codes: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_codes": None, "_labels": None}

    def __len__(self) -> int:
        return int(self.meta["n"])

    @property
    def codes(self) -> np.ndarray:
        """`(N, L)` uint8, memory-mapped read-only."""
        if self._codes is None:
            self._codes = np.load(self.folder / "codes.npy", mmap_mode="r")
        return self._codes

    @property
    def labels(self) -> np.ndarray:
        """`(N, C)` uint8 0/1, memory-mapped read-only."""
        if self._labels is None:
            self._labels = np.load(self.folder / "labels.npy", mmap_mode="r")
        return self._labels

    @property
    def ids(self) -> np.ndarray:
        """`(N,)` str: `ids.npy` when the build wrote one, else `"{prefix}:{row}"`; read or built on each access
        (not kept: 250 MB for 4.4 M rows)."""
        if self.meta.get("ids_file"):
            return np.load(self.folder / "ids.npy").astype(str)
        return np.char.add(f"{self.meta['id_prefix']}:", np.arange(len(self)).astype(str))

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.folder}: row index out of range [0, {len(self)})")
        codes = self.codes[idx]
        if reverse_complement:
            codes = encode.reverse_complement(codes, np.full(len(idx), self.length))
        return Batch((codes, np.ones(codes.shape, dtype=bool)), self.labels[idx].astype(np.float32))  # every row full

    def digest(self) -> str:
        """blake2b of every code and label byte, computed while converting."""
        return str(self.meta["digest"])
