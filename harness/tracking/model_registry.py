"""The best model of each task of a benchmark, registered in the MLflow Model Registry under an alias.

`register_best(experiment, board)` takes a ranked leaderboard (`harness.benchmark.leaderboard.ranked`) and, per
task (and split protocol), registers the logged model of its best-ranked cell as a version of the registered model
`regbench.<experiment>.<task>` (`registered_name`) and points the alias `best` at it, so
`mlflow.pyfunc.load_model("models:/regbench.smoke.enhancers.synthetic@best")` loads the current winner. Re-running
a benchmark whose winner did not change reuses that version; a new winner gets a new version and the alias moves.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from harness.tracking import store

ALIAS = "best"


def registered_name(experiment: str, task: str, split_protocol: str = "") -> str:
    """`regbench.<experiment>.<task>`, plus `.<split_protocol>` when given; characters the registry or a
    `models:/` URI cannot hold (`/`, `:`, `@`, spaces, ...) become `-`."""
    parts = ["regbench", experiment, task, *([split_protocol] if split_protocol else [])]
    return ".".join(re.sub(r"[^A-Za-z0-9_.+-]+", "-", p).strip("-") for p in parts)


def register_best(experiment: str, board: pd.DataFrame, alias: str = ALIAS) -> dict[str, str]:
    """Register the best cell's logged model of each task of `board` and set `alias` on it.

    `board`: a leaderboard with the columns `task`, `split_protocol`, `model`, `rank` (1 = best by the primary test
    metric), `status` ("ok" for scored rows), `primary_metric`, `test_primary`, `group` and `run_ids` (the
    comma-separated runs of that task × model, one per seed, each holding a logged model). The winner of a task is
    its first row with `rank` 1 and status "ok"; of its seeds, the run with the highest `test_primary` metric.
    Tasks scored under several split protocols get one registered model per protocol; tasks without a scored
    row, or whose winning run has no logged model, are left out. Returns `{task: "models:/<name>@<alias>"}`
    (the key is `task [split_protocol]` for a task under several protocols).
    """
    out: dict[str, str] = {}
    if board.empty:
        return out
    protocols = board.groupby("task")["split_protocol"].transform("nunique")
    for (task, protocol), rows in board.groupby(["task", "split_protocol"], sort=True):
        winners = rows[(rows["status"] == "ok") & (pd.to_numeric(rows["rank"], errors="coerce") == 1)]
        if winners.empty:
            continue
        several = bool(protocols.loc[rows.index[0]] > 1)
        name = registered_name(experiment, str(task), str(protocol) if several else "")
        if _register(name, winners.iloc[0], len(rows), experiment, alias):
            out[f"{task} [{protocol}]" if several else str(task)] = f"models:/{name}@{alias}"
    return out


def _best_run(row: pd.Series) -> Any:
    """Of the winning row's runs (one per seed), the one with the highest `test_primary`."""
    c = store.client()
    runs = [c.get_run(run_id) for run_id in str(row["run_ids"]).split(",") if run_id]
    return max(runs, key=lambda r: r.data.metrics.get("test_primary", float("-inf")))


def _register(name: str, row: pd.Series, n_models: int, experiment: str, alias: str) -> bool:
    """Register the logged model of the row's best run as a version of `name` (reusing the version of that run if
    there is one) and point `alias` at it; False when the run has no logged model."""
    c = store.client()
    run = _best_run(row)
    run_id = run.info.run_id
    logged = c.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'")
    if not logged:
        return False
    if not c.search_registered_models(filter_string=f"name = '{name}'"):
        c.create_registered_model(name, tags={"regbench.experiment": experiment, "task": row["task"]},
                                  description=f"Best model on {row['task']} in regbench experiment {experiment} "
                                  f"(alias @{alias}).")  # fmt: skip
    found = c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if found:
        version = found[0].version
    else:
        metric, score = row["primary_metric"], run.data.metrics.get("test_primary", float("nan"))
        low, high = (run.data.metrics.get(f"test_primary_ci_{end}", float("nan")) for end in ("low", "high"))
        tags = {"task": row["task"], "model": row["model"], "seed": run.data.tags.get("seed", ""),
                "primary_metric": metric, "test_primary": f"{score:.4f}", "rank_group": row["group"],
                "split_protocol": row["split_protocol"]}  # fmt: skip
        description = (f"{row['model']}: test {metric} {score:.3f} [{low:.3f}, {high:.3f}] (95% CI), rank 1 of "
                       f"{n_models} on {row['task']} in experiment {experiment}")  # fmt: skip
        version = c.create_model_version(name, f"models:/{logged[0].model_id}", run_id=run_id, tags=tags,
                                         description=description, model_id=logged[0].model_id).version  # fmt: skip
    c.set_registered_model_alias(name, alias, str(version))
    return True
