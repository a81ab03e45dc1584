"""The memory-mapped chromatin cache: exact round trips from both DeepSEA MATLAB versions (axes LCN and NCL) and
Basset, random-index reads, reuse, re-conversion of a changed source, and corrupted or truncated sources."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.data.encode import reverse_complement
from harness.paths import cache_dir
from tasks import chromatin
from tasks._chromatin_cache import MemmapSeqDataset, cache_folder, cached_split
from tasks._chromatin_formats import (
    BASSET,
    FormatError,
    HDF5Blocks,
    MatV5Blocks,
    deepsea_blocks,
    write_basset,
    write_deepsea_bundle,
)

Bundle = dict[str, tuple[np.ndarray, np.ndarray]]


def make_bundle(rng: np.random.Generator, sizes: dict[str, int], length: int = 40, n_labels: int = 6) -> Bundle:
    return {
        split: (
            rng.integers(0, 5, size=(n, length)).astype(np.uint8),
            (rng.random((n, n_labels)) < 0.2).astype(np.uint8),
        )
        for split, n in sizes.items()
    }


@pytest.fixture
def bundle(rng: np.random.Generator) -> Bundle:
    return make_bundle(rng, {"train": 300, "val": 20, "test": 25})


def cache_entries() -> list[str]:
    folder = cache_dir() / "chromatin"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_equals_source(ds: MemmapSeqDataset, codes: np.ndarray, labels: np.ndarray) -> None:
    batch = ds.take(np.arange(len(codes)))
    np.testing.assert_array_equal(batch.inputs[0], codes)
    np.testing.assert_array_equal(batch.y, labels)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.codes.dtype == np.uint8 and isinstance(ds.codes, np.memmap)


def test_deepsea_round_trips_from_v73_and_v5(tmp_path: Path, bundle: Bundle) -> None:
    write_deepsea_bundle(tmp_path, bundle)
    assert h5py.is_hdf5(tmp_path / "train.mat") and not h5py.is_hdf5(tmp_path / "valid.mat")  # LCN and NCL axes
    splits = chromatin.load_deepsea(tmp_path)
    for name, (codes, labels) in bundle.items():
        assert_equals_source(splits[name], codes, labels)
    assert splits["train"].ids[7] == "trainxdata:7" and splits["test"].ids[0] == "test:0"
    assert len(cache_entries()) == 3


def test_basset_round_trips(tmp_path: Path, bundle: Bundle) -> None:
    path = tmp_path / "basset.h5"
    write_basset(path, bundle, [f"cell{i}" for i in range(6)])
    for name, ds in chromatin.load_basset(path).items():
        assert_equals_source(ds, *bundle[name])


def test_random_index_reads_equal_the_source_rows(tmp_path: Path, bundle: Bundle, rng: np.random.Generator) -> None:
    write_deepsea_bundle(tmp_path, bundle)
    ds = chromatin.load_deepsea(tmp_path)["train"]
    codes, labels = bundle["train"]
    idx = rng.integers(0, len(codes), size=50)  # unsorted, with repeats
    batch = ds.take(idx)
    np.testing.assert_array_equal(batch.inputs[0], codes[idx])
    np.testing.assert_array_equal(batch.y, labels[idx])
    assert batch.y.dtype == np.float32 and batch.inputs[1].all()
    lengths = np.full(len(idx), codes.shape[1])
    np.testing.assert_array_equal(
        ds.take(idx, reverse_complement=True).inputs[0], reverse_complement(codes[idx], lengths)
    )
    with pytest.raises(IndexError, match="out of range"):
        ds.take(np.array([len(codes)]))
    copy = pickle.loads(pickle.dumps(ds))  # what a Ray worker receives: the folder, not the arrays
    assert len(pickle.dumps(ds)) < 2000
    np.testing.assert_array_equal(copy.take(idx).inputs[0], codes[idx])


def opener_counting(path: Path, calls: list[str]) -> HDF5Blocks | MatV5Blocks:
    calls.append(str(path))
    return deepsea_blocks(path, "train")


def test_cache_is_reused_and_a_changed_source_is_converted_again(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "train.mat"
    first = make_bundle(rng, {"train": 200})
    write_deepsea_bundle(tmp_path, first)
    calls: list[str] = []
    ds = cached_split(path, "trainxdata", "traindata", lambda: opener_counting(path, calls), "t")
    again = cached_split(path, "trainxdata", "traindata", lambda: opener_counting(path, calls), "t")
    assert len(calls) == 1 and again.digest() == ds.digest()
    second = make_bundle(rng, {"train": 200})  # same shape, new content
    write_deepsea_bundle(tmp_path, second)
    changed = cached_split(path, "trainxdata", "traindata", lambda: opener_counting(path, calls), "t")
    assert len(calls) == 2 and changed.digest() != ds.digest()
    assert_equals_source(changed, *second["train"])
    assert cache_entries() == [cache_folder(path, "trainxdata", "traindata").name]  # the stale copy is gone


def test_corrupted_source_names_the_file_and_leaves_no_cache(tmp_path: Path, bundle: Bundle) -> None:
    write_deepsea_bundle(tmp_path, bundle)
    path = tmp_path / "train.mat"
    size = path.stat().st_size
    with open(path, "r+b") as f:  # scribble over the middle of the one-hot data
        f.seek(size // 2)
        f.write(b"\xff" * 256)
    with pytest.raises(FormatError, match=rf"{path}: trainxdata rows from 0 are not one-hot"):
        chromatin.load_deepsea(tmp_path)
    assert not any("trainxdata" in name for name in cache_entries())


def test_truncated_sources_name_the_file_and_a_stale_cache_is_not_trusted(tmp_path: Path, bundle: Bundle) -> None:
    write_deepsea_bundle(tmp_path, bundle)
    chromatin.load_deepsea(tmp_path)  # a valid cache of the intact files
    for name in ("train.mat", "valid.mat"):
        path = tmp_path / name
        os.truncate(path, path.stat().st_size // 2)
        with pytest.raises(FormatError, match=rf"{path}: "):
            chromatin.load_deepsea(tmp_path)
        with pytest.raises(FormatError, match=rf"{path}: "):  # the earlier cache of the intact file is not used
            chromatin.load_deepsea(tmp_path)
        write_deepsea_bundle(tmp_path, bundle)
    assert not [n for n in cache_entries() if n.startswith(".tmp-")]


def test_a_killed_conversion_leaves_nothing_a_later_run_trusts(tmp_path: Path, bundle: Bundle) -> None:
    path = tmp_path / "basset.h5"
    write_basset(path, bundle, [f"c{i}" for i in range(6)])
    folder = cache_folder(path, "train_in", "train_out")
    leftover = folder.parent / f".tmp-{folder.name}-killed"
    leftover.mkdir(parents=True)
    np.save(leftover / "codes.npy", np.zeros((3, 40), np.uint8))  # what a conversion killed mid-way leaves
    folder.mkdir()
    (folder / "meta.json").write_text("{")  # a target truncated by a crash is not trusted either
    ds = cached_split(path, "train_in", "train_out", lambda: HDF5Blocks(path, "train_in", "train_out", BASSET), "x")
    assert_equals_source(ds, *bundle["train"])
