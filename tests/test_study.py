"""`regbench study` on a local Ray: MLflow parent/child layout, resume, failing trials, spec validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import ray
from mlflow.tracking import MlflowClient

from harness.cli import main
from harness.config import ConfigError
from harness.plugins import get_model
from harness.registry import UnknownNameError
from harness.tracking import store
from harness.tuning.search import StudyRequest, run_study, validate_study
from harness.tuning.search_space import searched_names

TINY = {"model": {"k": 3, "d_model": 16, "ff_mult": 2, "head_dim": 16, "n_layers": 1, "pos_encoding": "none"},
        "train": {"progress": False}, "data": {"n": 200}}  # fmt: skip


def _spec(tmp_path: Path, **kw: object) -> StudyRequest:
    args = {"task": "enhancers.synthetic", "model": "kmer_attention", "overrides": TINY, "trials": 2,
            "concurrency": 2, "max_epochs": 2, "storage": f"sqlite:///{tmp_path / 'optuna.db'}"}  # fmt: skip
    return StudyRequest(**{**args, **kw})


def _runs(experiment: str) -> list:
    client = MlflowClient(store.tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=100)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"model": "no_such_model"}, UnknownNameError, "no_such_model"),
        ({"trials": 0}, ConfigError, "trials=0"),
        ({"concurrency": 0}, ConfigError, "concurrency=0"),
        ({"overrides": {"model": {"nope": 1}}}, ConfigError, "model.nope"),
        ({"overrides": {"train": {"max_epochs": 3}}}, ConfigError, "--max-epochs"),
        ({"storage": "not a url"}, ConfigError, "not a url"),
    ],
)
def test_bad_spec_fails_before_ray_starts(tmp_path: Path, change: dict, error: type, message: str) -> None:
    assert not ray.is_initialized()
    with pytest.raises(error, match=message):
        run_study(_spec(tmp_path, **change))
    assert not ray.is_initialized() and not (tmp_path / "optuna.db").exists()


def test_sqlite_store_is_refused_with_a_ray_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mlflow server --backend-store-uri"):
        validate_study(_spec(tmp_path, ray_address="auto"))


def test_fixed_settings_are_not_searched() -> None:
    plugin = get_model("kmer_logreg")
    assert searched_names(plugin, {"model": {"k": 3}}) == ["model.C", "model.class_weight"]  # no train.* for sklearn


@pytest.mark.slow
def test_layout_seeds_and_resume(tmp_path: Path, local_ray: None) -> None:
    """One search, then one refit per evaluation seed (nested, `regbench.kind=refit`); the cell run carries the mean
    and sd over seeds; re-running reuses the finished trials and refits."""
    spec = _spec(tmp_path, seeds=(0, 1))
    first = run_study(spec)
    runs = _runs(first.experiment)
    parent = next(r for r in runs if r.info.run_id == first.parent_run_id)
    children = [r for r in runs if r.data.tags.get(store.PARENT_TAG) == first.parent_run_id]
    assert parent.data.tags["regbench.kind"] == "cell" and parent.data.tags["study_name"] == spec.name
    assert parent.info.run_name == "kmer_attention · enh.synth" and parent.info.status == "FINISHED"
    assert parent.data.tags["task"] == "enhancers.synthetic" and parent.data.tags["seeds"] == "0,1"
    names = sorted(r.info.run_name for r in children)
    assert names == ["kmer_attention · enh.synth · s0", "kmer_attention · enh.synth · s1",
                     "kmer_attention · enh.synth · t0", "kmer_attention · enh.synth · t1"]  # fmt: skip
    searched = set(searched_names(get_model("kmer_attention"), TINY))
    assert searched == {"model.n_heads", "model.dropout", "model.pooling", "model.stem", "train.lr",
                        "train.weight_decay", "train.batch_size", "train.mask_prob", "train.sampler"}  # fmt: skip
    client = MlflowClient(store.tracking_uri())
    trials = [r for r in children if r.data.tags["regbench.kind"] == "trial"]
    refits = sorted((r for r in children if r.data.tags["regbench.kind"] == "refit"), key=lambda r: r.data.tags["seed"])
    for child in trials:
        assert child.data.tags["ray_node_id"] and set(child.data.params) == searched  # only the searched ones
        history = client.get_metric_history(child.info.run_id, "val_auroc")
        assert [m.step for m in history] == list(range(1, len(history) + 1)) and history
        assert "train_loss" in child.data.metrics and child.data.metrics["peak_rss_mb"] > 0
    assert [r.data.tags["seed"] for r in refits] == ["0", "1"] and all(r.data.tags["ray_node_id"] for r in refits)
    for refit in refits:
        assert {"test_auroc", "test_auroc_ci_low", "test_primary", "n_params", "wall_time_s"} <= set(refit.data.metrics)
        assert refit.data.params["train.seed"] == refit.data.tags["seed"] and refit.data.params["model.k"] == "3"
        assert store.load_model(refit.info.run_id, "torch") is not None
    assert first.refit_run_ids == {0: refits[0].info.run_id, 1: refits[1].info.run_id}
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    assert {"trials.csv", "seeds.csv", "plots"} <= {a.path for a in client.list_artifacts(first.parent_run_id)}
    metrics = parent.data.metrics
    per_seed = [r.data.metrics["test_auroc"] for r in refits]
    assert metrics["test_auroc_mean"] == pytest.approx(sum(per_seed) / 2)
    assert metrics["test_auroc_sd"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2**0.5)
    assert metrics["test_primary"] == pytest.approx(metrics["test_auroc_mean"])
    assert metrics["trial_epochs"] == first.trial_epochs >= 2 and metrics["n_params"] == first.n_params > 0
    assert {"study_wall_time_s", "peak_rss_mb"} <= set(metrics)
    refit_seconds = sum(r.data.metrics["wall_time_s"] for r in refits)  # + the trials' own: the cell's compute
    assert refit_seconds < metrics["compute_time_s"] <= metrics["study_wall_time_s"]
    assert parent.data.params["study.seeds"] == "0,1" and first.n_trials == 2
    assert set(first.best_params) <= searched and 0.0 <= first.best_val <= 1.0

    second = run_study(_spec(tmp_path, trials=3, seeds=(0, 1)))  # resume: one new trial, the table covers all three
    assert second.n_new_trials == 1 and second.n_trials == 3
    table = pd.read_csv(client.download_artifacts(second.parent_run_id, "trials.csv", str(tmp_path)))
    assert list(table["number"]) == [0, 1, 2] and set(table["state"]) == {"COMPLETE"}
    new_children = [r for r in _runs(spec.name) if r.data.tags.get(store.PARENT_TAG) == second.parent_run_id]
    trial_names = [r.info.run_name for r in new_children if r.data.tags["regbench.kind"] == "trial"]
    assert trial_names == ["kmer_attention · enh.synth · t2"]
    if second.best_params == first.best_params:  # same best configuration: its refits are reused, moved under
        assert second.refit_run_ids == first.refit_run_ids
        assert {r.info.run_id for r in new_children if r.data.tags["regbench.kind"] == "refit"} == set(
            first.refit_run_ids.values()
        )
    assert not [r for r in _runs(spec.name) if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_failing_trials_end_failed_and_the_study_fails_cleanly(tmp_path: Path, local_ray: None, capsys) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sets = ["data.n=200", "model.k=3", "model.d_model=16", "model.head_dim=16", "train.lr=1e30", "train.grad_clip=0",
            "train.warmup_frac=0", "train.progress=false"]  # fmt: skip
    argv = ["study", "--task", "enhancers.synthetic", "--model", "kmer_attention", "--trials", "1", "--max-epochs",
            "1", "--storage", storage, "--experiment", "nan"] + [a for s in sets for a in ("--set", s)]  # fmt: skip
    assert main(argv) == 1
    assert "no trial completed (1 failed)" in capsys.readouterr().err
    runs = _runs("nan")
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [
        ("kmer_attention · enh.synth", "FAILED"), ("kmer_attention · enh.synth · t0", "FAILED")]  # fmt: skip
    trial = next(r for r in runs if r.data.tags["regbench.kind"] == "trial")
    error = MlflowClient(store.tracking_uri()).download_artifacts(trial.info.run_id, "error.txt", str(tmp_path))
    assert "FloatingPointError" in Path(error).read_text()


@pytest.mark.slow
def test_cross_validated_cell(tmp_path: Path, local_ray: None) -> None:
    """`data.split=cv` in a study: the search tunes on fold 1, each refit is K fold runs plus their pooled summary."""
    spec = _spec(tmp_path, model="kmer_logreg", trials=1, concurrency=1, max_epochs=1, study_name="cv",
                 overrides={"model": {"k": 3}, "data": {"n": 300, "split": "cv", "folds": 3}})  # fmt: skip
    result = run_study(spec)
    runs = _runs("cv")
    (refit,) = [r for r in runs if r.data.tags["regbench.kind"] == "refit"]
    folds = [r for r in runs if r.data.tags.get(store.PARENT_TAG) == refit.info.run_id]
    assert sorted(r.data.tags["fold"] for r in folds) == ["1", "2", "3"]
    assert {r.data.tags["regbench.kind"] for r in folds} == {"fold"}
    assert refit.data.tags["split_protocol"].startswith("cv3-stratified")
    fold_auroc = [r.data.metrics["test_auroc"] for r in folds]
    assert refit.data.metrics["test_auroc_mean"] == pytest.approx(sum(fold_auroc) / 3)
    assert "test_auroc_ci_low" in refit.data.metrics  # pooled out-of-fold, with its CI
    assert result.test_metrics["test_auroc_mean"] == pytest.approx(refit.data.metrics["test_auroc"])
