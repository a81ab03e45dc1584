"""Chromatin-profile tasks: DeepSEA / Basset readers on files written in the real formats, lazy HDF5 reading,
label groups from the real DeepSEA names, the multi-label metric path through `evaluate`, and one tracked run."""

from __future__ import annotations

from pathlib import Path

import h5py
import mlflow
import numpy as np
import pytest
import scipy.io
from sklearn.metrics import roc_auc_score

from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import N_CODE, encode_many
from harness.evaluation.scoring import evaluate
from harness.paths import DataNotFoundError
from harness.plugins import make_task
from harness.training.run import RunRequest, train_run
from tasks import chromatin
from tasks._chromatin_formats import (
    BASSET,
    DEEPSEA_TRAIN,
    codes_to_onehot,
    onehot_to_codes,
    write_basset,
    write_deepsea_bundle,
)
from tasks._hdf5_dataset import HDF5SeqDataset, runs
from tasks._synthetic_chromatin import LABELS, MOTIFS, generate


def random_split(rng: np.random.Generator, n: int, length: int, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    codes = rng.integers(0, 5, size=(n, length)).astype(np.uint8)  # includes N
    return codes, (rng.random((n, n_labels)) < 0.1).astype(np.float32)


@pytest.fixture
def bundle(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: random_split(rng, n, 60, 7) for name, n in (("train", 50), ("val", 11), ("test", 13))}


def test_deepsea_files_have_the_published_layout(tmp_path: Path, bundle: dict) -> None:
    write_deepsea_bundle(tmp_path, bundle)
    with open(tmp_path / "train.mat", "rb") as f:
        assert f.read(10) == b"MATLAB 7.3"
    with h5py.File(tmp_path / "train.mat", "r") as f:
        assert f.userblock_size == 512
        assert f["trainxdata"].shape == (60, 4, 50) and f["traindata"].shape == (7, 50)
        first = f["trainxdata"][:, :, 0]  # (position, base) of sample 0, bases ordered A, G, C, T
    codes = bundle["train"][0][0]
    for pos in range(60):
        expected = np.zeros(4) if codes[pos] == N_CODE else np.eye(4)["AGCT".index("ACGT"[codes[pos]])]
        np.testing.assert_array_equal(first[pos], expected)
    valid = scipy.io.loadmat(tmp_path / "valid.mat")
    assert valid["validxdata"].shape == (11, 4, 60) and valid["validdata"].shape == (11, 7)


def test_deepsea_reader_round_trips(tmp_path: Path, bundle: dict) -> None:
    write_deepsea_bundle(tmp_path, bundle)
    splits = chromatin.load_deepsea(tmp_path)
    for name, (codes, labels) in bundle.items():
        batch = splits[name].take(np.arange(len(codes)))
        assert batch.inputs[0].dtype == np.uint8 and batch.y.dtype == np.float32
        np.testing.assert_array_equal(batch.inputs[0], codes, err_msg=name)
        np.testing.assert_array_equal(batch.y, labels, err_msg=name)
        np.testing.assert_array_equal(splits[name].labels, labels)
        assert batch.inputs[1].shape == codes.shape and batch.inputs[1].all()


def test_basset_reader_round_trips(tmp_path: Path, bundle: dict) -> None:
    path = tmp_path / "basset.h5"
    names = [f"cell{i}" for i in range(7)]
    write_basset(path, bundle, names)
    with h5py.File(path, "r") as f:
        assert f["train_in"].shape == (50, 4, 1, 60)
    assert chromatin.basset_info(path, lambda: ()) == (60, tuple(names))
    for name, ds in chromatin.load_basset(path).items():
        codes, labels = bundle[name]
        batch = ds.take(np.arange(len(codes)))
        np.testing.assert_array_equal(batch.inputs[0], codes, err_msg=name)
        np.testing.assert_array_equal(batch.y, labels, err_msg=name)


def test_uniform_and_zero_columns_decode_to_n() -> None:
    codes, _ = encode_many(["ACGTN"])
    onehot = codes_to_onehot(codes, "ACGT").astype(np.float16)
    onehot[0, :, 4] = 0.25  # Basset's N
    np.testing.assert_array_equal(onehot_to_codes(onehot, "ACGT"), codes)
    np.testing.assert_array_equal(onehot_to_codes(codes_to_onehot(codes, "AGCT"), "AGCT"), codes)


def test_runs_merge_consecutive_rows() -> None:
    assert runs(np.array([2, 3, 4, 9, 11, 12])) == [(2, 5), (9, 10), (11, 13)]
    assert runs(np.array([], dtype=np.int64)) == []


def test_take_reads_only_the_requested_rows(tmp_path: Path, rng: np.random.Generator) -> None:
    codes, labels = random_split(rng, 4000, 100, 3)
    write_deepsea_bundle(tmp_path, {"train": (codes, labels)})
    ds = HDF5SeqDataset(tmp_path / "train.mat", "trainxdata", "traindata", DEEPSEA_TRAIN)
    assert ds.bytes_read == 0 and len(ds) == 4000
    idx = np.array([3999, 3, 5, 4, 3])  # unsorted, with a repeat: 4 distinct rows in 2 runs
    batch = ds.take(idx)
    np.testing.assert_array_equal(batch.inputs[0], codes[idx])
    np.testing.assert_array_equal(batch.y, labels[idx])
    assert ds.bytes_read == 4 * 4 * 100  # 4 rows × 4 bases × 100 bp of uint8, not the 1.6 MB file


def test_row_window(tmp_path: Path, rng: np.random.Generator) -> None:
    codes, labels = random_split(rng, 30, 20, 2)
    path = tmp_path / "b.h5"
    write_basset(path, {s: (codes, labels) for s in ("train", "val", "test")}, ["a", "b"])
    ds = HDF5SeqDataset(path, "test_in", "test_out", BASSET, rows=(10, 25))
    assert len(ds) == 15
    np.testing.assert_array_equal(ds.take(np.array([0, 14])).inputs[0], codes[[10, 24]])
    np.testing.assert_array_equal(ds.labels, labels[10:25])
    with pytest.raises(IndexError, match="out of range"):
        ds.take(np.array([15]))


def test_missing_deepsea_bundle_names_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"train\.mat, valid\.mat, test\.mat.*deepsea_train_bundle"):
        make_task("chromatin.deepsea", {"dir": str(tmp_path)})
    with pytest.raises(DataNotFoundError, match=r"encode_roadmap\.h5"):
        make_task("chromatin.basset", {"path": str(tmp_path / "missing.h5")})


@pytest.mark.realdata
def test_deepsea_groups_from_the_real_names(real_data: Path) -> None:
    names = chromatin.deepsea_label_names()
    groups = chromatin.deepsea_groups()
    assert {g: len(i) for g, i in groups.items()} == {"dnase": 125, "tf": 690, "histone": 104}
    assert np.array_equal(np.sort(np.concatenate(list(groups.values()))), np.arange(919))
    assert all("_DNase_" in names[i] for i in groups["dnase"])
    assert not any("_DNase_" in names[i] for i in (*groups["tf"], *groups["histone"]))
    assert all("_H3K" in names[i] or "_H2" in names[i] or "_H4" in names[i] for i in groups["histone"])
    basset = chromatin.read_names(real_data / chromatin.BASSET_NAMES, 164)
    assert basset[0] == "8988T"


def test_synthetic_labels_follow_the_planted_motifs() -> None:
    codes, labels = generate(4000, 200, seed=1)
    rates = labels.mean(axis=0)
    assert np.all((rates > 0.002) & (rates < 0.15)), rates
    text = ["".join("ACGTN"[c] for c in row) for row in codes]
    for column, (name, (_, motifs)) in enumerate(LABELS.items()):
        if len(motifs) != 1:
            continue
        site = MOTIFS[motifs[0]]
        rc = site[::-1].translate(str.maketrans("ACGT", "TGCA"))
        has = np.array([site in s or rc in s for s in text])
        pos = labels[:, column] == 1
        assert has[pos].mean() > 0.75, name  # positives carry the motif (false-positive rate 0.5%)
        assert has[~pos].mean() < 0.06, name  # negatives lack it, but for chance sites of the short motifs


class FixedScores:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, dataset: SeqDataset) -> np.ndarray:
        return self.scores


def test_multilabel_metrics_through_evaluate_match_sklearn(rng: np.random.Generator) -> None:
    n, groups = 80, {"dnase": np.array([0, 1]), "tf": np.array([2, 3, 4])}
    y = (rng.random((n, 5)) < 0.3).astype(np.float32)
    y[:, 4] = 0  # a label without positives is skipped, not an error
    scores = np.clip(0.4 * y + rng.random((n, 5)), 0, 1)
    ds = SeqDataset((Seqs(np.zeros((n, 10), np.uint8), np.full(n, 10, np.int32)),), y, np.arange(n).astype(str))
    task = chromatin._task("chromatin.test", 10, tuple("abcde"), groups, "given", lambda: {}, True, "")
    ev = evaluate(task, FixedScores(scores), {"val": ds, "test": ds}, seed=0)
    per_label = [roc_auc_score(y[:, j], scores[:, j]) for j in range(4)]
    m = ev.metrics
    assert m["test_auroc_median"] == pytest.approx(np.median(per_label))
    assert m["test_auroc_median_dnase"] == pytest.approx(np.median(per_label[:2]))
    assert m["test_auroc_median_tf"] == pytest.approx(np.median(per_label[2:4]))
    assert m["test_n_labels_skipped"] == 1 and m["test_n_labels_scored"] == 4
    for key in ("auroc_median", "auroc_median_dnase", "auroc_median_tf"):
        assert m[f"test_{key}_ci_low"] <= m[f"test_{key}"] <= m[f"test_{key}_ci_high"], key


@pytest.mark.slow
def test_tracked_run_logs_group_medians_with_cis(tracking_uri: str, tmp_path: Path) -> None:
    """Synthetic data in the DeepSEA format (HDF5 train, MATLAB v5 val/test): training, evaluation, logging."""
    tiny = {"filters1": 8, "filters2": 8, "filters3": 8, "fc_dim": 16}
    overrides = {"model": tiny, "train": {"progress": False, "batch_size": 64},
                 "data": {"n": 300, "length": 200, "format": "deepsea"}}  # fmt: skip
    run_id = train_run(RunRequest("chromatin.synthetic", "basset", overrides, max_epochs=1))
    client = mlflow.MlflowClient(tracking_uri)
    metrics = client.get_run(run_id).data.metrics
    for key in ("auroc_median", "auroc_median_dnase", "auroc_median_tf"):
        assert metrics[f"test_{key}_ci_low"] <= metrics[f"test_{key}_ci_high"], key
    assert "val_auroc_median" in metrics and "test_auprc_median_histone" in metrics
    table = np.genfromtxt(client.download_artifacts(run_id, "per_label/test.csv", str(tmp_path)), delimiter=",",
                          names=True, dtype=None, encoding="utf-8")  # fmt: skip
    assert list(table["label"]) == list(LABELS) and set(table["group"]) == {"dnase", "tf", "histone"}
    assert "plots/per_label_auroc_test.png" in [a.path for a in client.list_artifacts(run_id, "plots")]
