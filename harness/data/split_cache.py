"""A node-level cache of encoded splits: built once, memory-mapped by every trial and refit process on the node.

A task's splits (`{"train", "val", "test"}` of `SeqDataset`) are keyed by a digest of the task name, its data
options and the checksums of its source files (data files and the code that turns them into splits), computed
*before* anything is encoded. The first process to need a key builds the splits under an exclusive lock
(`<folder>.lock`, `fcntl.flock`), writes them into a `.tmp-*` folder and renames it into place; the others wait on
the lock and then map the finished files. Layout of `$REGBENCH_CACHE/splits/<task>-<key>/`:

- `<split>.b<branch>.codes.npy` `(N, L)` uint8, `<split>.b<branch>.lengths.npy` `(N,)` int32,
  `<split>.labels.npy` `(N,)`/`(N, C)` float32, `<split>.ids.npy` `(N,)` fixed-width str;
- `meta.json`: `CACHE_VERSION`, the key's inputs, and per array file its size and blake2b digest.

A load trusts a folder only when `meta.json` matches the key and every file has its recorded size and digest (one
pass over the bytes, ~0.1 s per 100 MB; the pages it reads are the shared page cache the maps then use), so a
truncated or corrupted file is rebuilt, never used. The arrays come back as read-only memory maps: processes on one
node share their pages instead of each holding a copy. `REGBENCH_SPLIT_CACHE=0` turns the cache off.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.datasets import SeqDataset, Seqs
from harness.paths import cache_dir

CACHE_VERSION = 1
SPLITS = ("train", "val", "test")
FULL_HASH_BYTES = 256 << 20  # files up to this size are hashed whole; larger ones (genomes) by size, mtime, ends
_CHUNK = 8 << 20


def enabled() -> bool:
    return os.environ.get("REGBENCH_SPLIT_CACHE", "1") != "0"


def file_checksum(path: Path) -> str:
    """blake2b of a file's bytes (size, mtime and the first/last 8 MiB for files over `FULL_HASH_BYTES`); a folder
    is the checksum of its files' relative names and checksums."""
    if path.is_dir():
        h = hashlib.blake2b(digest_size=16)
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{child.relative_to(path)}={file_checksum(child)};".encode())
        return h.hexdigest()
    stat = path.stat()
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if stat.st_size <= FULL_HASH_BYTES:
            while block := f.read(_CHUNK):
                h.update(block)
            return h.hexdigest()
        h.update(f.read(_CHUNK))
        f.seek(stat.st_size - _CHUNK)
        h.update(f.read(_CHUNK))
    return f"{stat.st_size}:{stat.st_mtime_ns}:{h.hexdigest()}"


def cache_key(task: str, options: Mapping[str, Any], sources: Sequence[Path]) -> dict[str, Any]:
    """The inputs the cache is keyed on: task, data options (sorted) and each source's resolved path and checksum."""
    return {"version": CACHE_VERSION, "task": task, "options": json.loads(json.dumps(dict(options), sort_keys=True,
            default=str)), "sources": {str(p.resolve()): file_checksum(p) for p in sources}}  # fmt: skip


def folder_for(key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "splits" / f"{key['task']}-{digest}"


def cached_splits(
    task: str, options: Mapping[str, Any], sources: Sequence[Path], build: Callable[[], Mapping[str, SeqDataset]]
) -> dict[str, SeqDataset]:
    """The task's splits from the node's cache, calling `build()` (and storing its result) only when no valid copy
    exists for this key. With the cache off, or a source missing (`build()` then raises its own error), `build()`
    as is."""
    if not enabled() or not all(p.exists() for p in sources):
        return dict(build())
    key = cache_key(task, options, sources)
    folder = folder_for(key)
    if (hit := load(folder, key)) is not None:
        return hit
    folder.parent.mkdir(parents=True, exist_ok=True)
    with locked(folder.with_name(folder.name + ".lock")):
        if (hit := load(folder, key)) is not None:  # another process built it while we waited
            return hit
        write(folder, key, build())
    hit = load(folder, key)
    if hit is None:
        raise OSError(f"{folder}: the split cache just written does not verify (disk full or failing?)")
    return hit


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive `fcntl.flock` on `path` (created if missing): one process at a time builds a cache entry."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _arrays(splits: Mapping[str, SeqDataset]) -> Iterator[tuple[str, np.ndarray]]:
    for split in SPLITS:
        ds = splits[split]
        for b, branch in enumerate(ds.seqs):
            yield f"{split}.b{b}.codes.npy", branch.codes
            yield f"{split}.b{b}.lengths.npy", branch.lengths
        yield f"{split}.labels.npy", ds.labels
        yield f"{split}.ids.npy", np.asarray(ds.ids).astype(str)


def write(folder: Path, key: Mapping[str, Any], splits: Mapping[str, SeqDataset]) -> None:
    """Write `splits` into a temporary folder beside `folder`, then rename it into place (replacing a stale one)."""
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(f"split cache for {key['task']}: no {', '.join(missing)} split to store")
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}-"))
    try:
        files = {}
        for name, array in _arrays(splits):
            np.save(tmp / name, np.ascontiguousarray(array))
            files[name] = {"size": (tmp / name).stat().st_size, "digest": _digest(tmp / name)}
        branches = {s: len(splits[s].seqs) for s in SPLITS}
        (tmp / "meta.json").write_text(json.dumps({"key": key, "branches": branches, "files": files}, indent=1))
        if folder.exists():
            stale = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".stale-{folder.name}-"))
            os.replace(folder, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def load(folder: Path, key: Mapping[str, Any]) -> dict[str, SeqDataset] | None:
    """The memory-mapped splits in `folder`, or None unless its meta matches `key` and every file verifies."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != json.loads(json.dumps(key)):
        return None
    files: dict[str, dict[str, Any]] = meta.get("files", {})
    try:
        for name, info in files.items():
            path = folder / name
            if path.stat().st_size != info["size"] or _digest(path) != info["digest"]:
                return None
        maps = {name: np.asarray(np.load(folder / name, mmap_mode="r")) for name in files}
        out = {}
        for split in SPLITS:
            branches = tuple(
                Seqs(maps[f"{split}.b{b}.codes.npy"], maps[f"{split}.b{b}.lengths.npy"])
                for b in range(meta["branches"][split])
            )
            out[split] = SeqDataset(branches, maps[f"{split}.labels.npy"], maps[f"{split}.ids.npy"])
    except (OSError, ValueError, KeyError):
        return None
    return out
