"""register_best against a real SQLite store: the best model of a task is registered with the alias `best`, loads
and scores through `models:/<name>@best`, a re-run with the same winner reuses its version, a new winner moves the
alias."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from harness.benchmark.leaderboard import cell_runs, ranked
from harness.config import parse_overrides
from harness.tracking import store
from harness.tracking.model_registry import register_best, registered_name
from harness.training.run import RunRequest, train_run


def test_register_best_sets_the_alias_on_the_winner() -> None:
    for model in ("kmer_logreg", "length_only"):
        train_run(RunRequest("enhancers.synthetic", model, parse_overrides(["data.n=240"]), experiment="reg"))
    board, _ = ranked(cell_runs("reg"))
    winner = board[board["rank"] == 1].iloc[0]

    uris = register_best("reg", board)
    name = registered_name("reg", "enhancers.synthetic")
    assert name == "regbench.reg.enhancers.synthetic"
    assert uris == {"enhancers.synthetic": f"models:/{name}@best"}
    c = store.client()
    version = c.get_model_version_by_alias(name, "best")
    assert version.run_id == winner["run_ids"] and version.tags["model"] == winner["model"]
    assert version.source == c.get_run(version.run_id).data.tags[store.MODEL_URI_TAG]
    scores = mlflow.pyfunc.load_model(uris["enhancers.synthetic"]).predict(pd.DataFrame({"sequence": ["ACGT" * 50]}))
    assert list(scores.columns) == ["score"] and 0 <= scores["score"].iloc[0] <= 1

    assert register_best("reg", board) == uris  # same winner: same version
    assert [v.version for v in c.search_model_versions(f"name = '{name}'")] == [version.version]

    swapped = board.assign(rank=board["rank"].map({1: 2, 2: 1}))  # the other model now ranks first
    register_best("reg", swapped)
    moved = c.get_model_version_by_alias(name, "best")
    assert moved.version != version.version and moved.tags["model"] != winner["model"]


def test_a_task_without_a_scored_row_is_left_out() -> None:
    board = pd.DataFrame([{"task": "enhancers.synthetic", "split_protocol": "", "model": "m", "rank": pd.NA,
                           "group": "", "status": "failed", "primary_metric": "auroc", "test_primary": float("nan"),
                           "run_ids": "0" * 32}])  # fmt: skip
    assert register_best("reg", board.astype({"rank": "Int64"})) == {}
