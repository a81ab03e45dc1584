"""Leaderboard: rows from real runs in the temporary MLflow store, aggregation per task × model, Markdown."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.benchmark.leaderboard import (
    BOARD_COLUMNS,
    CELL_COLUMNS,
    cell_runs,
    display,
    leaderboard,
    split_comparison,
    to_markdown,
)
from harness.tracking import store
from harness.training.run import RunRequest, train_run

TASK = "enhancers.synthetic"
DATA = {"n": 120}


def test_cell_runs_and_leaderboard_from_real_runs() -> None:
    empty = cell_runs("lb")  # no such experiment yet
    assert empty.empty and list(empty.columns) == list(CELL_COLUMNS) and leaderboard(empty).empty
    logreg = [train_run(RunRequest(TASK, "kmer_logreg", {"data": DATA, "model": {"k": 3}}, seed, experiment="lb"))
              for seed in (0, 1)]  # fmt: skip
    tiny = {"data": DATA, "model": {"k": 3, "d_model": 16, "head_dim": 16}, "train": {"progress": False}}
    attention = train_run(RunRequest(TASK, "kmer_attention", tiny, 0, max_epochs=1, experiment="lb"))
    failed = store.record_run("lb", "x", {"regbench.kind": "cell", "task": TASK, "model": "speid", "seed": 0,
                                             "regbench.skip_reason": "speid: no pair input"}, None)  # fmt: skip
    store.record_run("lb", "trial-0", {"regbench.kind": "trial", "task": TASK, "model": "kmer_logreg"}, None)

    runs = cell_runs("lb")
    assert list(runs.columns) == list(CELL_COLUMNS)
    assert set(runs["run_id"]) == {*logreg, attention, failed}  # the trial run is not a scored run
    row = runs.set_index("run_id").loc[attention]
    logged = store.client().get_run(attention).data.metrics
    assert (row["task"], row["model"], row["seed"], row["primary_metric"]) == (TASK, "kmer_attention", 0, "auroc")
    assert row["test_primary"] == pytest.approx(logged["test_auroc"])
    assert row["test_primary_ci_low"] == pytest.approx(logged["test_auroc_ci_low"])
    assert row["test_auprc"] == pytest.approx(logged["test_auprc"])
    assert row["n_params"] == logged["n_params"] > 0 and row["peak_rss_mb"] > 0 and math.isnan(row["peak_gpu_mb"])
    assert row["status"] == "FINISHED" and row["dataset_digest"] and row["kind"] == "train"

    board = leaderboard(runs).set_index("model")
    assert list(leaderboard(runs).columns) == list(BOARD_COLUMNS)
    assert board.loc["kmer_logreg", "n_seeds"] == 2
    seeds = runs[runs["model"] == "kmer_logreg"]["test_primary"].to_numpy()
    assert board.loc["kmer_logreg", "test_primary"] == pytest.approx(seeds.mean())
    assert board.loc["kmer_logreg", "test_primary_sd"] == pytest.approx(np.std(seeds, ddof=1))
    assert board.loc["kmer_attention", "test_primary_ci_high"] == pytest.approx(logged["test_auroc_ci_high"])
    assert (board.loc["speid", "status"], board.loc["speid", "skip_reason"]) == ("failed", "speid: no pair input")
    assert sorted(board["rank"].dropna().tolist()) == [1, 2]


def frame(rows: list[dict]) -> pd.DataFrame:
    base = {c: math.nan for c in CELL_COLUMNS} | {"task": "x", "primary_metric": "auroc", "status": "FINISHED",
                                                  "skip_reason": "", "kind": "refit"}  # fmt: skip
    return pd.DataFrame([base | r for r in rows], columns=list(CELL_COLUMNS))


def test_leaderboard_keeps_newest_finished_run_per_seed_and_ranks() -> None:
    t = pd.Timestamp("2026-01-01", tz="UTC")
    later = t + pd.Timedelta("1h")
    runs = frame([
        {"run_id": "a0", "model": "a", "seed": 0, "test_primary": 0.6, "start_time": t},
        {"run_id": "a0new", "model": "a", "seed": 0, "test_primary": 0.9, "start_time": later,
         "study_wall_time_s": 12.0, "compute_time_s": 10.0, "wall_time_s": 2.0, "test_primary_ci_low": 0.85,
         "test_primary_ci_high": 0.95},
        {"run_id": "a1", "model": "a", "seed": 1, "test_primary": 0.7, "start_time": t, "wall_time_s": 4.0,
         "test_primary_ci_low": 0.65, "test_primary_ci_high": 0.75},
        {"run_id": "a2", "model": "a", "seed": 2, "test_primary": 0.1, "start_time": t, "status": "FAILED"},
        {"run_id": "b0", "model": "b", "seed": 0, "test_primary": 0.95, "test_primary_ci_low": 0.9,
         "test_primary_ci_high": 0.99, "start_time": t},
        {"run_id": "c0", "model": "c", "seed": 0, "status": "KILLED", "start_time": t},
    ])  # fmt: skip
    board = leaderboard(runs)
    assert board["model"].tolist() == ["b", "a", "c"]
    assert board["rank"].tolist()[:2] == [1, 2] and pd.isna(board["rank"].iloc[2])
    assert board["group"].tolist() == ["1", "2", ""]  # without paired tests: the position by score
    a = board.set_index("model").loc["a"]
    assert a["n_seeds"] == 2 and a["test_primary"] == pytest.approx(0.8)
    assert a["test_primary_sd"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert (a["test_primary_ci_low"], a["test_primary_ci_high"]) == pytest.approx((0.75, 0.85))  # mean of the seeds'
    assert a["runtime_s"] == pytest.approx((10.0 + 4.0) / 2)  # a cell's compute (not its wall), else the run's own
    assert a["run_ids"] == "a0new,a1"
    c = board.set_index("model").loc["c"]
    assert c["status"] == "failed" and c["skip_reason"] == "run c0 ended KILLED"
    shown = display(board)
    assert shown["test score"].tolist() == ["0.950 [0.900, 0.990]", "0.800 [0.750, 0.850] ± 0.141 (n=2)", "failed"]
    assert shown["note"].tolist() == ["", "", "run c0 ended KILLED"]


def test_split_protocols_rank_separately_and_sit_side_by_side() -> None:
    t = pd.Timestamp("2026-01-01", tz="UTC")
    ci = {"test_primary_ci_low": 0.1, "test_primary_ci_high": 0.9, "start_time": t}
    runs = frame([
        {"run_id": "ar", "model": "a", "seed": 0, "split_protocol": "random", "test_primary": 0.9, **ci},
        {"run_id": "ac", "model": "a", "seed": 0, "split_protocol": "chromosome", "test_primary": 0.3, **ci},
        {"run_id": "br", "model": "b", "seed": 0, "split_protocol": "random", "test_primary": 0.8, **ci},
        {"run_id": "bc", "model": "b", "seed": 0, "split_protocol": "chromosome", "test_primary": 0.4, **ci},
        {"run_id": "cc", "model": "c", "seed": 0, "split_protocol": "chromosome", "status": "FAILED", "start_time": t,
         "skip_reason": "boom"},
        {"run_id": "o", "task": "other", "model": "a", "seed": 0, "split_protocol": "holdout", "test_primary": 0.5,
         **ci},
    ])  # fmt: skip
    board = leaderboard(runs)
    ranked = board.set_index(["task", "split_protocol", "model"])["rank"]
    assert ranked[("x", "chromosome", "b")] == 1 and ranked[("x", "chromosome", "a")] == 2
    assert ranked[("x", "random", "a")] == 1 and ranked[("x", "random", "b")] == 2
    assert display(board)["split"].tolist() == board["split_protocol"].tolist()
    side = split_comparison(board)  # the task with one protocol is left out
    assert side.columns.tolist() == ["task", "model", "test auroc [chromosome]", "test auroc [random]", "gap"]
    assert side.set_index("model")["gap"].to_dict() == {"a": "0.600", "b": "0.400", "c": ""}
    assert side.set_index("model").loc["c", "test auroc [chromosome]"] == "failed"
    assert side.set_index("model").loc["a", "test auroc [random]"] == "0.900 [0.100, 0.900]"
    assert split_comparison(leaderboard(runs[runs["task"] == "other"])).empty


def test_to_markdown_renders_escapes_and_blanks() -> None:
    table = pd.DataFrame({"name": ["a|b", "c"], "value": [0.123456, math.nan], "n": [3, 4]})
    assert to_markdown(table) == "| name | value | n |\n|---|---|---|\n| a\\|b | 0.1235 | 3 |\n| c |  | 4 |\n"
