"""Cross-validation (`data.split=cv`): folds are disjoint and cover every example once, stratified, whole chromosomes
per EPI fold, clear option errors, and a CV training run read back from a real SQLite MLflow store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from harness.config import ConfigError, parse_overrides
from harness.data.splits import CvTask, check_folds, fold_indices
from harness.plugins import make_task
from harness.training.run import RunRequest, train_run


def assert_partition(folds: list[dict[str, np.ndarray]], n: int) -> None:
    """Test folds cover rows 0..n-1 exactly once; within a fold train, val and test are disjoint and cover all."""
    tests = np.concatenate([f["test"] for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(n))
    for f in folds:
        parts = np.concatenate([f["train"], f["val"], f["test"]])
        assert np.array_equal(np.sort(parts), np.arange(n)) and len(f["val"]) > 0


def test_stratified_folds_partition_the_rows_and_keep_the_class_balance() -> None:
    labels = (np.random.default_rng(0).random(503) < 0.2).astype(np.float32)
    folds = fold_indices(labels, 5, 0.1, seed=3)
    assert len(folds) == 5
    assert_partition(folds, len(labels))
    for f in folds:
        assert abs(labels[f["test"]].sum() - labels.sum() / 5) <= 1  # positives dealt evenly
        assert abs(len(f["val"]) - 0.1 * (len(labels) - len(f["test"]))) <= 1
        assert abs(labels[f["val"]].mean() - labels.mean()) < 0.03
    again = fold_indices(labels, 5, 0.1, seed=3)
    assert all(np.array_equal(a["test"], b["test"]) for a, b in zip(folds, again, strict=True))
    other = fold_indices(labels, 5, 0.1, seed=4)
    assert not np.array_equal(folds[0]["test"], other[0]["test"])


def test_grouped_folds_never_split_a_chromosome() -> None:
    rng = np.random.default_rng(1)
    chrom = rng.choice([f"chr{i}" for i in range(1, 12)], size=900)
    labels = (rng.random(900) < 0.1).astype(np.float32)
    folds = fold_indices(labels, 4, 0.1, seed=0, groups=chrom)
    assert_partition(folds, len(labels))
    seen: set[str] = set()
    for f in folds:
        test, val, train = (set(chrom[f[s]]) for s in ("test", "val", "train"))
        assert not (test & val or test & train or val & train)  # whole chromosomes per test fold and val set
        assert not test & seen
        seen |= test
    assert seen == set(chrom)


def test_fold_errors_name_the_key_and_value() -> None:
    for bad in (1, 0, "five", 2.5, True):
        with pytest.raises(ConfigError, match=r"data\.folds="):
            check_folds(bad)
    with pytest.raises(ConfigError, match=r"data\.folds=5: a chromosome-grouped CV needs at least 6 chromosomes"):
        fold_indices(np.array([0, 1] * 10, np.float32), 5, 0.1, 0, groups=np.array(["chr1", "chr2"] * 10))
    with pytest.raises(ConfigError, match=r"data\.folds=5: needs at least 5 examples of each class"):
        fold_indices(np.array([1, 1, 1] + [0] * 20, np.float32), 5, 0.1, 0)
    with pytest.raises(ConfigError, match=r"data\.folds=1"):
        make_task("enhancers.synthetic", {"split": "cv", "folds": 1})
    with pytest.raises(ConfigError, match=r"data\.folds=3 applies to data\.split=cv only"):
        make_task("enhancers.synthetic", {"folds": 3})
    with pytest.raises(ConfigError, match=r"data\.test_fraction does not apply to data\.split=cv"):
        make_task("enhancers.synthetic", {"split": "cv", "test_fraction": 0.3})
    with pytest.raises(ConfigError, match=r"data\.split='kfold'.*holdout, cv"):
        make_task("enhancers.synthetic", {"split": "kfold"})
    with pytest.raises(ConfigError, match=r"data\.folds=0"):
        make_task("epi.synthetic", {"split": "cv", "folds": 0})


def test_enhancer_task_folds_cover_the_deduplicated_pool_once() -> None:
    task = make_task("enhancers.synthetic", {"n": 300, "split": "cv", "folds": 4})
    holdout = make_task("enhancers.synthetic", {"n": 300})
    assert isinstance(task, CvTask) and task.split_protocol == "cv4-stratified_val0.1_seed0"
    folds = task.fold_tasks()
    pool = np.concatenate([ds.ids for ds in holdout.splits().values()])  # the same deduplicated pool, carved
    tests = np.concatenate([f.splits()["test"].ids for f in folds])
    assert len(tests) == len(set(tests)) and set(tests) == set(pool)
    for f in folds:
        ids = {s: set(f.splits()[s].ids) for s in ("train", "val", "test")}
        assert not (ids["train"] & ids["test"] or ids["val"] & ids["test"] or ids["train"] & ids["val"])
    assert task.splits() is folds[0].splits() and task.digest() != folds[0].digest()


def test_epi_folds_hold_whole_chromosomes() -> None:
    task = make_task("epi.synthetic", {"split": "cv", "folds": 3})
    assert isinstance(task, CvTask) and task.split_protocol == "cv3-chromosome_val0.1_seed0"
    seen: set[str] = set()
    n_tests = 0
    for fold in task.fold_tasks():
        chroms = {s: {i.split("|")[1].split(":")[0] for i in fold.splits()[s].ids} for s in ("train", "val", "test")}
        assert not (
            chroms["test"] & chroms["train"] or chroms["test"] & chroms["val"] or chroms["val"] & chroms["train"]
        )
        assert not chroms["test"] & seen
        seen |= chroms["test"]
        n_tests += len(fold.splits()["test"])
    all_ids = np.concatenate([f.splits()["test"].ids for f in task.fold_tasks()])
    assert len(set(all_ids)) == n_tests and len(seen) == 8  # every pair once; all 8 synthetic chromosomes


@pytest.mark.slow  # ~20 s: three logged fold runs
def test_cv_run_logs_fold_runs_and_their_mean_sd_on_the_parent(tracking_uri: str, tmp_path: Path) -> None:
    sets = ["data.n=240", "data.split=cv", "data.folds=3", "model.k=3"]
    run_id = train_run(RunRequest("enhancers.synthetic", "kmer_logreg", parse_overrides(sets), experiment="cv"))
    client = MlflowClient(tracking_uri)
    parent = client.get_run(run_id)
    tags, metrics = parent.data.tags, parent.data.metrics
    assert parent.info.status == "FINISHED" and tags["regbench.kind"] == "train"
    assert tags["split_protocol"] == "cv3-stratified_val0.1_seed0" and tags["folds"] == "3"
    assert float(tags["near_duplicate_test_fraction"]) == 0.0 and parent.data.params["data.folds"] == "3"
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    assert sorted(c.data.tags["fold"] for c in children) == ["1", "2", "3"]
    assert all(c.data.tags["regbench.kind"] == "fold" and c.info.status == "FINISHED" for c in children)
    for name in ("test_auroc", "test_auprc", "test_f1_valthr", "val_auroc"):
        values = [c.data.metrics[name] for c in children]
        assert metrics[f"{name}_mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert metrics[f"{name}_sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert metrics["test_primary_mean"] == metrics["test_auroc_mean"]
    oof = pd.read_csv(client.download_artifacts(run_id, "predictions/oof.tsv", str(tmp_path)), sep="\t")
    fold_tests = [
        pd.read_csv(client.download_artifacts(c.info.run_id, "predictions/test.tsv", str(tmp_path / c.info.run_id)),
                    sep="\t").assign(fold=int(c.data.tags["fold"]))
        for c in children
    ]  # fmt: skip
    joined = pd.concat(fold_tests).sort_values("id").reset_index(drop=True)
    assert oof["id"].is_unique and len(oof) == len(joined)
    assert (oof[["id", "fold"]].values == joined[["id", "fold"]].values).all()
    assert np.allclose(oof["score"], joined["score"])
    assert metrics["test_auroc"] == pytest.approx(roc_auc_score(oof["label"], oof["score"]))
    assert metrics["test_primary"] == metrics["test_auroc"]
    assert metrics["test_auroc_ci_low"] <= metrics["test_auroc"] <= metrics["test_auroc_ci_high"]
    test_tsv = pd.read_csv(client.download_artifacts(run_id, "predictions/test.tsv", str(tmp_path / "t")), sep="\t")
    assert list(test_tsv.columns) == ["id", "label", "score"] and len(test_tsv) == len(oof)
