"""The node-level split cache: a second load maps the stored arrays without building, equal to the first; a truncated
or corrupted file, a changed source or changed options rebuild; concurrent processes build once."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from harness.data import split_cache
from harness.data.datasets import SeqDataset, Seqs
from harness.plugins import make_task
from tasks import _synthetic_enhancers


def _splits(seed: int = 0) -> dict[str, SeqDataset]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in (("train", 30), ("val", 5), ("test", 8)):
        lengths = rng.integers(3, 12, size=n).astype(np.int32)
        codes = np.full((n, 12), 4, np.uint8)
        for row, length in enumerate(lengths):
            codes[row, :length] = rng.integers(0, 4, size=length)
        ids = np.asarray([f"{name}{i}" for i in range(n)])
        out[name] = SeqDataset((Seqs(codes, lengths),), rng.integers(0, 2, size=n).astype(np.float32), ids)
    return out


class Builder:
    """A `build` callable that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, SeqDataset]:
        self.calls += 1
        return _splits()


def _equal(a: dict[str, SeqDataset], b: dict[str, SeqDataset]) -> None:
    for name in split_cache.SPLITS:
        assert a[name].digest() == b[name].digest()
        assert list(a[name].ids) == list(b[name].ids)
        np.testing.assert_array_equal(a[name].seqs[0].codes, b[name].seqs[0].codes)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.tsv"
    path.write_text("ACGT\t1\n")
    return path


def test_second_load_is_a_memory_mapped_hit(source: Path) -> None:
    build = Builder()
    first = split_cache.cached_splits("t", {"n": 1}, [source], build)
    second = split_cache.cached_splits("t", {"n": 1}, [source], build)
    assert build.calls == 1
    _equal(first, second)
    _equal(second, _splits())
    codes = second["train"].seqs[0].codes
    assert isinstance(codes.base, np.memmap) and not codes.flags.writeable


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_a_damaged_cache_is_rebuilt_not_trusted(source: Path, damage: str) -> None:
    build = Builder()
    split_cache.cached_splits("t", {}, [source], build)
    folder = split_cache.folder_for(split_cache.cache_key("t", {}, [source]))
    target = folder / "train.b0.codes.npy"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) - 7])
    elif damage == "flip":
        target.write_bytes(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])  # same size, one code changed
    else:
        (folder / "meta.json").write_text("{")
    assert split_cache.load(folder, split_cache.cache_key("t", {}, [source])) is None
    again = split_cache.cached_splits("t", {}, [source], build)
    assert build.calls == 2
    _equal(again, _splits())
    assert split_cache.cached_splits("t", {}, [source], build) and build.calls == 2  # the rebuilt copy is used


def test_changed_source_or_options_change_the_key(source: Path) -> None:
    build = Builder()
    split_cache.cached_splits("t", {"seed": 0}, [source], build)
    split_cache.cached_splits("t", {"seed": 1}, [source], build)
    assert build.calls == 2
    source.write_text("ACGA\t1\n")  # same size, other bytes
    split_cache.cached_splits("t", {"seed": 0}, [source], build)
    assert build.calls == 3


def test_missing_source_or_cache_off_builds_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = Builder()
    for _ in range(2):
        split_cache.cached_splits("t", {}, [tmp_path / "absent.fa"], build)
    assert build.calls == 2
    monkeypatch.setenv("REGBENCH_SPLIT_CACHE", "0")
    (tmp_path / "present.fa").write_text(">a\nACGT\n")
    for _ in range(2):
        split_cache.cached_splits("t", {}, [tmp_path / "present.fa"], build)
    assert build.calls == 4


def _build_slowly(source: str, counter: str) -> None:
    def build() -> dict[str, SeqDataset]:
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(0.5)
        return _splits()

    split_cache.cached_splits("t", {}, [Path(source)], build)


def test_concurrent_processes_build_once(source: Path, tmp_path: Path) -> None:
    counter = tmp_path / "builds"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_build_slowly, args=(str(source), str(counter))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text() == "x"


def test_synthetic_task_generates_once_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    first = make_task("enhancers.synthetic", {"n": 200}).splits()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("generated again: the split cache missed")

    monkeypatch.setattr(_synthetic_enhancers, "generate", refuse)
    second = make_task("enhancers.synthetic", {"n": 200}).splits()
    _equal(dict(first), dict(second))
    with pytest.raises(AssertionError, match="generated again"):  # other options: a new key, so it must generate
        make_task("enhancers.synthetic", {"n": 201}).splits()


def test_files_task_rebuilds_when_its_file_changes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["".join(rng.choice(list("ACGT"), 30)) + f"\t{i % 2}" for i in range(60)]
    path = tmp_path / "data.tsv"
    path.write_text("\n".join(rows) + "\n")
    before = make_task("enhancers.files", {"train": str(path)}).splits()
    path.write_text("\n".join(rows[:50]) + "\n")
    after = make_task("enhancers.files", {"train": str(path)}).splits()
    assert sum(len(d) for d in before.values()) == 60 and sum(len(d) for d in after.values()) == 50
