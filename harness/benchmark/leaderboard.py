"""Leaderboards from MLflow runs: one row per task × split protocol × model.

`cell_runs(experiment)` flattens the scored runs of an experiment (study cells and `regbench train` runs) into one
row each; `leaderboard(runs)` aggregates them per task × split protocol × model; `with_groups(board, table)` sets
the rank groups from the paired comparisons of `harness.benchmark.comparisons` (models the adjusted paired tests do
not distinguish from a group's leader share its rank, "1="); `display(board)` picks the
human-readable columns; `split_comparison(board)` puts the scores of a task under different split protocols side
by side (e.g. `epi.*` with `data.split` chromosome vs random); `to_markdown(table)` renders any table as GitHub
Markdown (no tabulate dependency).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness.benchmark import comparisons
from harness.tracking import store

SCORED_KINDS = ("refit", "train")  # runs with a model and test scores: a study cell's seeds, `regbench train`
LISTED_KINDS = (*SCORED_KINDS, "cell")  # cells too: a cell that failed or cannot run has no refit
UNABLE = "unable"  # tag `regbench.status` of a cell that cannot run; its run ends FINISHED without metrics
CELL_COLUMNS = (
    "run_id", "kind", "task", "model", "seed", "split_protocol", "dataset_digest", "primary_metric", "test_primary",
    "test_primary_ci_low", "test_primary_ci_high", "test_auprc", "test_f1", "test_mcc", "n_params", "wall_time_s",
    "study_wall_time_s", "compute_time_s", "train_throughput_seq_per_s", "peak_gpu_mb", "peak_rss_mb", "status",
    "skip_reason", "parent_run_id", "start_time", "plugin_source",
)  # fmt: skip
BOARD_COLUMNS = (
    "task", "split_protocol", "model", "rank", "group", "primary_metric", "n_seeds", "test_primary", "test_primary_sd",
    "test_primary_ci_low", "test_primary_ci_high", "test_auprc", "runtime_s", "peak_rss_mb", "peak_gpu_mb",
    "n_params", "status", "skip_reason", "run_ids", "plugin_source",
)  # fmt: skip
# Where each metric column comes from, first present wins (multi-label tasks log `*_median` summaries).
SOURCES = {
    "test_auprc": ("test_auprc", "test_auprc_median"),
    "test_f1": ("test_f1",),
    "test_mcc": ("test_mcc",),
    "n_params": ("n_params",),
    "wall_time_s": ("wall_time_s",),
    "study_wall_time_s": ("study_wall_time_s",),
    "compute_time_s": ("compute_time_s",),
    "train_throughput_seq_per_s": ("train_throughput_seq_per_s",),
    "peak_gpu_mb": ("peak_gpu_mem_mb", "gpu_peak_used_mb", "cuda_peak_allocated_mb"),
    "peak_rss_mb": ("peak_rss_mb",),
}


def cell_runs(experiment: str) -> pd.DataFrame:
    """One row per study cell (`regbench.kind=cell`), refit of a cell's seed (`regbench.kind=refit`) or
    `regbench train` run (`regbench.kind=train`) of `experiment`, newest first, with the columns `CELL_COLUMNS`; a
    refit's `study_wall_time_s` is its cell's (the whole search plus refits). `test_primary*` are the test value
    and 95% CI of the run's own primary metric (tag `primary_metric`); `peak_gpu_mb` is the first of `peak_gpu_mem_mb`,
    `gpu_peak_used_mb`, `cuda_peak_allocated_mb` logged; `skip_reason` is set on cells that could not run."""
    found = store.search_runs(experiment)
    if found.empty or "tags.regbench.kind" not in found:
        return pd.DataFrame(columns=list(CELL_COLUMNS))
    found = found[found["tags.regbench.kind"].isin(LISTED_KINDS)]
    rows = pd.DataFrame([_cell_row(row) for _, row in found.iterrows()], columns=list(CELL_COLUMNS))
    refits = rows["kind"] == "refit"
    for column in ("study_wall_time_s", "compute_time_s"):  # a refit carries its cell's
        cell_time = rows[rows["kind"] == "cell"].set_index("run_id")[column]
        if refits.any():
            rows.loc[refits, column] = rows.loc[refits, "parent_run_id"].map(cell_time).astype(float)
    return rows


def _value(row: pd.Series, column: str) -> Any:
    value = row.get(column)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _metric(row: pd.Series, *names: str) -> float:
    for name in names:
        value = _value(row, f"metrics.{name}")
        if value is not None:
            return float(value)
    return math.nan


def _cell_row(row: pd.Series) -> dict[str, Any]:
    tag = {name: _value(row, f"tags.{name}") for name in ("task", "model", "seed", "split_protocol",
                                                          "dataset_digest", "primary_metric")}  # fmt: skip
    primary = tag["primary_metric"] or ""
    out: dict[str, Any] = {
        "run_id": row["run_id"],
        "kind": row["tags.regbench.kind"],
        **tag,
        "seed": int(tag["seed"]) if tag["seed"] is not None else -1,
        "test_primary": _metric(row, f"test_{primary}"),
        "test_primary_ci_low": _metric(row, f"test_{primary}_ci_low"),
        "test_primary_ci_high": _metric(row, f"test_{primary}_ci_high"),
        "status": UNABLE.upper() if _value(row, "tags.regbench.status") == UNABLE else row["status"],
        "skip_reason": _value(row, "tags.regbench.skip_reason") or "",
        "parent_run_id": _value(row, "tags.mlflow.parentRunId") or "",
        "start_time": row["start_time"],
        "plugin_source": _value(row, "tags.regbench.plugin_source") or "",
    }
    out.update({column: _metric(row, *names) for column, names in SOURCES.items()})
    return out


def split_protocols(runs: pd.DataFrame) -> pd.Series:
    """The `split_protocol` of each run, "" where it has none (so runs without one group together)."""
    return runs["split_protocol"].astype(object).fillna("")


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task × split protocol × model (columns `BOARD_COLUMNS`), ranked within each task and split protocol by
    the primary test metric (runs with no split protocol tag form their own group, ""). `rank` is the position by
    score; `group` is its label ("1", "2", ...) until `with_groups` sets it from paired tests ("1=", "1=", "3").

    Only FINISHED refit and train runs are scored, the newest per seed; cell runs only say why a pair has none.
    One seed: `test_primary` with its bootstrap 95% CI.
    Several seeds: the mean, `test_primary_sd` (sample sd across seeds) and as CI the mean of the seeds' bootstrap
    95% CI bounds (the test-set uncertainty of a typical seed's model; the sd is the seed-to-seed spread).
    `runtime_s` is the cell's compute (`compute_time_s`: its trials' and refits' own wall seconds, not the time it
    waited for a slot), else its `study_wall_time_s` (runs logged before it existed), else the run's `wall_time_s`;
    memory is the maximum over seeds. A pair with no finished run gets `status` "failed" ("unable" when its newest
    run is a cell that cannot run, run status "UNABLE") and the newest `skip_reason` (or its run status)."""
    runs = runs.assign(split_protocol=split_protocols(runs))
    keys = ["task", "split_protocol", "model"]
    rows = [_board_row(*key, group) for key, group in runs.groupby(keys, sort=False)]
    board = pd.DataFrame(rows, columns=[c for c in BOARD_COLUMNS if c not in ("rank", "group")])
    if board.empty:
        return pd.DataFrame(columns=list(BOARD_COLUMNS))
    board = board.sort_values(["task", "split_protocol", "test_primary"], ascending=[True, True, False],
                              na_position="last")  # fmt: skip
    ranks = board.groupby(["task", "split_protocol"])["test_primary"].rank(ascending=False, method="min")
    board.insert(3, "rank", ranks)
    board["rank"] = board["rank"].astype("Int64")
    board.insert(4, "group", board["rank"].map(lambda r: "" if pd.isna(r) else str(r)).astype(object))
    return board.reset_index(drop=True)


def with_groups(board: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard with `group` set from the paired comparisons `table` (`comparisons.comparisons(board)`)."""
    return board.assign(group=comparisons.ranking_groups(board, table))


def ranked(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`leaderboard(runs)` grouped by the paired tests, and those tests (`comparisons.comparisons`): the one ranking
    that the terminal, `leaderboard.md/csv` and the report show."""
    board = leaderboard(runs)
    table = comparisons.comparisons(board)
    return with_groups(board, table), table


def _board_row(task: str, split: str, model: str, group: pd.DataFrame) -> dict[str, Any]:
    group = group.sort_values("start_time", ascending=False)
    done = group[(group["status"] == "FINISHED") & group["kind"].isin(SCORED_KINDS)].drop_duplicates("seed")
    metric = group["primary_metric"].dropna()
    base = {
        "task": task,
        "split_protocol": split,
        "model": model,
        "primary_metric": metric.iloc[0] if len(metric) else "",
        "plugin_source": group["plugin_source"].iloc[0],  # the newest run's: an outside plugin's origin
    }
    if done.empty:
        latest = group.iloc[0]
        reason = latest["skip_reason"] or f"run {latest['run_id']} ended {latest['status']}"
        status = UNABLE if latest["status"] == UNABLE.upper() else "failed"
        return {**base, "n_seeds": 0, "status": status, "skip_reason": reason, "run_ids": latest["run_id"]}
    primary = done["test_primary"].to_numpy(dtype=float)
    single = len(done) == 1
    runtime = done["compute_time_s"].fillna(done["study_wall_time_s"]).fillna(done["wall_time_s"])
    return {
        **base,
        "n_seeds": len(done),
        "test_primary": float(np.mean(primary)),
        "test_primary_sd": math.nan if single else float(np.std(primary, ddof=1)),
        "test_primary_ci_low": float(done["test_primary_ci_low"].mean()),  # NaN when no seed logged one
        "test_primary_ci_high": float(done["test_primary_ci_high"].mean()),
        "test_auprc": float(done["test_auprc"].mean()),
        "runtime_s": float(runtime.mean()),
        "peak_rss_mb": float(done["peak_rss_mb"].max()),
        "peak_gpu_mb": float(done["peak_gpu_mb"].max()),
        "n_params": float(done["n_params"].iloc[0]),
        "status": "ok",
        "skip_reason": "",
        "run_ids": ",".join(done["run_id"]),
    }


def display(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard for people: the score as `score_text` writes it."""
    out = pd.DataFrame({
        "task": board["task"],
        "split": board["split_protocol"],
        "model": board["model"],
        "rank": board["group"],
        "metric": board["primary_metric"],
        "test score": [_score(row) for _, row in board.iterrows()],
        "test AUPRC": board["test_auprc"].map(lambda v: _fmt(v, ".3f")),
        "runtime (s)": board["runtime_s"].map(lambda v: _fmt(v, ".1f")),
        "peak RSS (MB)": board["peak_rss_mb"].map(lambda v: _fmt(v, ".0f")),
        "peak GPU (MB)": board["peak_gpu_mb"].map(lambda v: _fmt(v, ".0f")),
        "params": board["n_params"].map(lambda v: _fmt(v, ",.0f")),
        "note": [note(row) for _, row in board.iterrows()],
    })  # fmt: skip
    return out


def note(row: pd.Series) -> str:
    """Why a pair has no score; an outside plugin's origin (`regbench.plugin_source`)."""
    parts = [row["skip_reason"]] if row["status"] != "ok" else []
    source = row.get("plugin_source")
    if isinstance(source, str) and source:
        parts.append(f"plugin from {source}")
    return "; ".join(parts)


def split_comparison(board: pd.DataFrame) -> pd.DataFrame:
    """For each task scored under two or more split protocols: one row per task × model with its score under
    each protocol in a column `test <metric> [protocol]` (formatted as in `display`), plus `gap`, the largest
    minus the smallest mean test score across protocols (how much a leaky protocol flatters the model). Empty
    when no task has several protocols."""
    multi = board.groupby("task")["split_protocol"].transform("nunique") > 1
    rows: list[dict[str, Any]] = []
    for (task, model), group in board[multi].groupby(["task", "model"], sort=False):
        metric = group["primary_metric"].iloc[0] or "primary"
        row: dict[str, Any] = {"task": task, "model": model}
        row.update({f"test {metric} [{r['split_protocol']}]": _score(r) for _, r in group.iterrows()})
        scores = group.loc[group["status"] == "ok", "test_primary"]
        row["gap"] = _fmt(scores.max() - scores.min(), ".3f") if len(scores) > 1 else ""
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, spec)


def score_text(mean: float, ci_low: float, ci_high: float, sd: float, n_seeds: int) -> str:
    """`0.871 [0.842, 0.897]` (one seed: value and 95% CI) or `0.871 [0.840, 0.899] ± 0.012 (n=3)` (several: the
    mean, the mean of the seeds' CI bounds, the sd over seeds); parts that are NaN are left out."""
    text = _fmt(mean, ".3f")
    if pd.notna(ci_low) and pd.notna(ci_high):
        text += f" [{ci_low:.3f}, {ci_high:.3f}]"
    if n_seeds > 1:
        text += f" ± {_fmt(sd, '.3f')} (n={n_seeds})"
    return text


def _score(row: pd.Series) -> str:
    if row["status"] != "ok":
        return row["status"]
    return score_text(row["test_primary"], row["test_primary_ci_low"], row["test_primary_ci_high"],
                      row["test_primary_sd"], row["n_seeds"])  # fmt: skip


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; floats as `.4g`, missing values empty, `|` escaped."""

    def cell(value: Any) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        text = format(value, ".4g") if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
