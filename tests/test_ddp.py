"""Data-parallel training: batch shards with exact loss weights, 2 Ray Train workers equal to 1 worker, and a
benchmark whose trials and refits run on 2 workers each."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.config import ConfigError, TrainConfig
from harness.tracking import store
from harness.training.batches import PlannedBatch, shard
from harness.training.run import RunRequest, train_run
from harness.training.workers import train_run_on_workers
from tests.test_faults import kill_during_a_trial, train_workers

TINY = {"k": 3, "d_model": 16, "ff_mult": 2, "head_dim": 16, "n_layers": 1, "dropout": 0.0}


def test_shards_partition_each_batch_with_weights_that_sum_to_the_world() -> None:
    plan = [PlannedBatch(np.arange(7), True), PlannedBatch(np.arange(7, 8), False)]
    shards = [shard(plan, rank, 2) for rank in (0, 1)]
    assert shards[0][0].rows.tolist() == [0, 2, 4, 6] and shards[1][0].rows.tolist() == [1, 3, 5]
    assert shards[0][0].weight + shards[1][0].weight == pytest.approx(2.0)  # DDP divides the summed grads by 2
    assert shards[0][0].reverse_complement and shards[1][0].reverse_complement
    assert (shards[1][1].counted, shards[1][1].weight) == (0, 0.0)  # a 1-row batch: rank 1 steps on a filler
    assert shard(plan, 0, 1) is plan


def test_workers_beyond_the_machine_are_refused() -> None:
    request = RunRequest("enhancers.synthetic", "kmer_attention", {})
    with pytest.raises(ConfigError, match=f"--workers 99: this machine can place 1 to {os.cpu_count()} workers"):
        train_run_on_workers(request, 99)
    cv = RunRequest("enhancers.synthetic", "kmer_attention", {"data": {"split": "cv", "n": 200}})
    with pytest.raises(ConfigError, match="cross-validation runs on one worker"):
        train_run_on_workers(cv, 2)


def _history(run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(store.client().get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.slow
def test_two_workers_train_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed and global batch (32), dropout off, fp32: the 2-worker run's per-epoch training loss matches the
    1-worker run's within 1e-5 (relative) and its final weights within 1e-4; rank 0 alone logged the run."""
    monkeypatch.chdir(tmp_path)
    train = {"batch_size": 32, "progress": False, "threads": 1, "amp": "false"}  # fp32: bf16 rounding is not 1e-5
    overrides = {"model": TINY, "train": train, "data": {"n": 300}}
    request = RunRequest("enhancers.synthetic", "kmer_attention", overrides, seed=0, max_epochs=3)
    one = train_run(request)
    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as ray_tmp:  # short paths for Ray's sockets
        monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
        two = train_run_on_workers(request, 2)
    run = store.get_run(two)
    assert run.info.status == "FINISHED" and run.data.tags["workers"] == "2"
    losses_one, losses_two = _history(one, "train_loss"), _history(two, "train_loss")
    assert len(losses_one) == len(losses_two) == 3
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-5)
    assert len(_history(two, "data_wait_fraction")) == 3  # one row per epoch: rank 0's reports only
    rss_max, rss_all = _history(two, "peak_rss_mb_max_rank"), _history(two, "peak_rss_mb_all_ranks")
    assert len(rss_max) == len(rss_all) == 3 and all(m < a <= 2 * m for m, a in zip(rss_max, rss_all, strict=True))
    assert len(_history(two, "data_wait_fraction_max_rank")) == 3
    assert not _history(one, "peak_rss_mb_all_ranks")  # one worker: its own peak_rss_mb says it all
    weights_one, weights_two = store.load_model(one, "torch").state_dict(), store.load_model(two, "torch").state_dict()
    assert weights_one.keys() == weights_two.keys()
    for name, value in weights_one.items():
        torch.testing.assert_close(weights_two[name], value, atol=1e-4, rtol=1e-4, msg=name)
    assert TrainConfig().batch_size == 64  # the global batch is the setting itself, not per worker


@pytest.mark.slow
def test_an_sklearn_model_runs_on_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    request = RunRequest("enhancers.synthetic", "kmer_logreg", {"data": {"n": 200}})
    run_id = train_run_on_workers(request, 2)
    assert "note: kmer_logreg is not a torch model; it runs on one worker" in capsys.readouterr().out
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and "workers" not in run.data.tags


STUDY = """\
name: ddp
tasks: [enhancers.synthetic]
models: [kmer_attention]
trials: 1
max_epochs: 4
cpus_per_trial: 1
workers_per_trial: 2
shortcuts: false
set: {data.n: 300, train.batch_size: 32, train.progress: false}
model_set:
  kmer_attention: {model.k: 3, model.d_model: 16, model.head_dim: 16, model.n_layers: 1}
"""


@pytest.mark.slow
def test_a_benchmark_on_two_workers_per_trial_retries_a_killed_worker(tmp_path: Path, ray_tmp: str) -> None:
    """`workers_per_trial: 2` on a 2-CPU local Ray: each trial and refit is a Ray Train run of 2 workers, rank 0
    logging each epoch once. One worker killed mid-trial: that trial's run ends FAILED with the reason, Tune runs
    the trial again, and the benchmark finishes with its leaderboard, nothing left RUNNING."""
    (tmp_path / "ddp.yaml").write_text(STUDY)
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    argv = [sys.executable, "-m", "harness.cli", "benchmark", "--study", "ddp.yaml", "--no-progress"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def a_train_worker(trials: pd.DataFrame) -> int | None:  # once the trial has logged an epoch
        workers = train_workers(ray_tmp)
        logged = "metrics.train_loss" in trials and trials["metrics.train_loss"].notna().any()
        return workers[-1] if logged and workers else None

    killed = kill_during_a_trial(proc, tmp_path, "ddp", a_train_worker, interval_s=0.3)
    out = proc.communicate(timeout=900)[0]
    assert killed is not None and proc.returncode == 0, out[-3000:]
    runs = store.search_runs("ddp")
    assert "RUNNING" not in set(runs["status"]), runs[["tags.mlflow.runName", "status"]]
    cell = runs[runs["tags.regbench.kind"] == "cell"].iloc[0]
    assert cell["metrics.n_trials_retried"] == 1 and cell["metrics.n_trials"] == 1
    trials = runs[runs["tags.regbench.kind"] == "trial"].set_index("status")
    assert sorted(trials.index) == ["FAILED", "FINISHED"] and (trials["tags.workers"] == "2").all()
    error = Path(store.client().download_artifacts(trials.loc["FAILED", "run_id"], "error.txt", str(tmp_path)))
    assert "WorkerGroupError" in error.read_text()
    finished = trials.loc["FINISHED"]
    epochs = _history(finished["run_id"], "train_loss")
    assert len(epochs) == len(_history(finished["run_id"], "val_auroc")) >= 1  # one row per epoch: rank 0 alone
    assert len(_history(finished["run_id"], "peak_rss_mb_all_ranks")) == len(epochs)  # both ranks' memory
    refit = runs[runs["tags.regbench.kind"] == "refit"].iloc[0]
    assert refit["status"] == "FINISHED" and refit["tags.workers"] == "2" and 0 <= refit["metrics.test_auroc"] <= 1
    assert store.load_model(refit["run_id"], "torch") is not None  # rank 0 logged the model
    board = (tmp_path / "reports" / "ddp" / "leaderboard.md").read_text()
    assert "kmer_attention" in board
