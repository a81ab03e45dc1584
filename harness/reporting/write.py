"""`regbench report`: an experiment's runs as a paper-ready report (report.md + self-contained report.html).

Per task, a leaderboard of models (built on `harness.benchmark.leaderboard`: FINISHED runs, the newest per seed)
with the primary test metric and its uncertainty, AUPRC, F1, MCC, parameters, wall time, throughput, peak memory, split
protocol, dataset digest and run ids; then figures (`harness.reporting.figures`).

Ranks with ties. Each model gets an uncertainty interval on its primary test metric: with one seed, the run's
bootstrap 95% CI; with several seeds, the mean over seeds of the per-seed CI bounds, widened where needed to cover
mean ± sd across seeds. Models are sorted by the (mean) metric; the first model leads a group, and every following
model whose interval overlaps the group leader's interval joins that group and shares the leader's rank, written
"r=" (e.g. "1=" for models statistically indistinguishable from the best). The first model whose interval does
not overlap its leader's starts a new group whose rank is its 1-based position. Models without a finished run
have no rank.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from harness.benchmark import leaderboard
from harness.reporting.figures import Section, figure_sections
from harness.reporting.render import render_html, render_markdown
from harness.tracking import store

REPORT_FILES = ("report.md", "report.html")


def uncertainty_interval(runs: pd.DataFrame) -> tuple[float, float]:
    """`(low, high)` of one model's primary test metric over its seeds' runs (see the module docstring)."""
    values = runs["test_primary"].to_numpy(dtype=float)
    low, high = float(np.nanmean(runs["test_primary_ci_low"])), float(np.nanmean(runs["test_primary_ci_high"]))
    if len(values) > 1:
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        low, high = np.fmin(low, mean - sd), np.fmax(high, mean + sd)
    return float(low), float(high)


def tied_ranks(score: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[str]:
    """Rank labels of models sorted by `score` descending, given their intervals: "1=", "1=", "3", ...
    ("" where the score is NaN). Groups as in the module docstring; "=" marks every member of a group of 2+."""
    leaders: list[int] = []
    leader = -1
    for i in range(len(score)):
        if np.isnan(score[i]):
            leaders.append(-1)
            continue
        if leader < 0 or not (high[i] >= low[leader] and low[i] <= high[leader]):
            leader = i
        leaders.append(leader)
    sizes = Counter(g for g in leaders if g >= 0)
    return ["" if g < 0 else f"{g + 1}{'=' if sizes[g] > 1 else ''}" for g in leaders]


def task_table(runs: pd.DataFrame, task: str, split: str | None = None) -> pd.DataFrame:
    """The leaderboard of one task (of its runs under split protocol `split`; None: all its runs as one group): one
    row per model, sorted, with tied ranks (numeric columns kept raw)."""
    protocol = leaderboard.split_protocols(runs)
    chosen = runs[(runs["task"] == task) & ((protocol == split) | (split is None))]
    board = leaderboard.leaderboard(chosen.assign(split_protocol=split or ""))
    by_id = runs.set_index("run_id")
    rows = []
    for _, row in board.iterrows():
        used = by_id.loc[row["run_ids"].split(",")] if row["status"] == "ok" else by_id.loc[[]]
        low, high = uncertainty_interval(used) if len(used) else (np.nan, np.nan)
        rows.append(
            {
                "model": row["model"],
                "metric": row["primary_metric"],
                "n_seeds": int(row["n_seeds"]),
                "test_primary": row["test_primary"],
                "test_primary_sd": row["test_primary_sd"],
                "interval_low": low,
                "interval_high": high,
                "test_auprc": row["test_auprc"],
                "test_f1": used["test_f1"].mean(),
                "test_mcc": used["test_mcc"].mean(),
                "n_params": row["n_params"],
                "wall_time_s": row["runtime_s"],  # a study cell's tuning + refit, else the run's own wall time
                "throughput": used["train_throughput_seq_per_s"].mean(),
                "peak_gpu_mb": row["peak_gpu_mb"],
                "peak_rss_mb": row["peak_rss_mb"],
                "split_protocol": ", ".join(sorted(set(used["split_protocol"].dropna()))),
                "dataset_digest": ", ".join(sorted(set(used["dataset_digest"].dropna()))),
                "run_ids": row["run_ids"],
                "note": row["skip_reason"],
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values("test_primary", ascending=False, na_position="last").reset_index(drop=True)
    table.insert(
        0, "rank", tied_ranks(*(table[c].to_numpy(float) for c in ("test_primary", "interval_low", "interval_high")))
    )
    return table


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """`task_table` formatted for people: `0.871 [0.842, 0.897]` (one seed) or `0.871 ± 0.012 (n=3)`."""

    def fmt(value: float, spec: str) -> str:
        return "" if pd.isna(value) else format(value, spec)

    def score(row: pd.Series) -> str:
        if row["n_seeds"] == 0:
            return "failed"
        if row["n_seeds"] > 1:
            return f"{row['test_primary']:.3f} ± {fmt(row['test_primary_sd'], '.3f')} (n={row['n_seeds']})"
        return f"{row['test_primary']:.3f} [{fmt(row['interval_low'], '.3f')}, {fmt(row['interval_high'], '.3f')}]"

    metric = table["metric"].iloc[0] if len(table) else "primary"
    return pd.DataFrame(
        {
            "rank": table["rank"],
            "model": table["model"],
            f"test {metric}": [score(r) for _, r in table.iterrows()],
            "AUPRC": table["test_auprc"].map(lambda v: fmt(v, ".3f")),
            "F1": table["test_f1"].map(lambda v: fmt(v, ".3f")),
            "MCC": table["test_mcc"].map(lambda v: fmt(v, ".3f")),
            "params": table["n_params"].map(lambda v: fmt(v, ",.0f")),
            "wall time (s)": table["wall_time_s"].map(lambda v: fmt(v, ".1f")),
            "train seq/s": table["throughput"].map(lambda v: fmt(v, ",.0f")),
            "peak GPU (MB)": table["peak_gpu_mb"].map(lambda v: fmt(v, ".0f")),
            "peak RSS (MB)": table["peak_rss_mb"].map(lambda v: fmt(v, ".0f")),
            "split protocol": table["split_protocol"],
            "dataset digest": table["dataset_digest"],
            "run ids": table["run_ids"].str.replace(",", ", "),
            "note": table["note"],
        }
    )


def build_sections(experiment: str, artifacts_dir: Path) -> list[Section]:
    """The report's sections: one leaderboard per task, then the figures."""
    runs = leaderboard.cell_runs(experiment)
    if runs.empty:
        raise LookupError(
            f"experiment {experiment!r} has no scored runs (regbench.kind=cell or train) in {store.tracking_uri()}; "
            "check the name and MLFLOW_TRACKING_URI"
        )
    tables = task_tables(runs)
    rank_note = (
        "Rank: models sorted by the test metric; a model whose uncertainty interval (one seed: bootstrap 95% CI; "
        "several seeds: mean CI bounds widened to cover mean ± sd) overlaps that of its group's leader shares the "
        "leader's rank, marked `=` (e.g. `1=`: indistinguishable from the best)."
    )
    sections = [Section(f"Leaderboard: {task}", rank_note, [display_table(t)]) for task, t in tables.items()]
    side_by_side = leaderboard.split_comparison(leaderboard.leaderboard(runs))
    if len(side_by_side):
        note = ("The same task and model under each split protocol; `gap`: best minus worst mean test score. A "
                "large gap between a random and a chromosome split is leakage, not skill.")  # fmt: skip
        sections.append(Section("Split protocols side by side", note, [side_by_side]))
    return sections + figure_sections(experiment, runs, tables, artifacts_dir)


def task_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`task_table` per task, or per task and split protocol (`"task [protocol]"`) for a task run under several."""
    protocols = leaderboard.split_protocols(runs)
    tables: dict[str, pd.DataFrame] = {}
    for task in sorted(runs["task"].dropna().unique()):
        splits = sorted(protocols[runs["task"] == task].unique())
        if len(splits) == 1:
            tables[task] = task_table(runs, task)
            continue
        for split in splits:
            tables[f"{task} [{split}]"] = task_table(runs, task, split)
    return tables


def write_report(experiment: str, out_dir: str | Path, log_to_benchmark: bool = True) -> Path:
    """Write `report.md`, `report.html` and `figures/*.png` into `out_dir` (returned); log them to the
    experiment's newest benchmark run (`regbench.kind=benchmark`) under `report/` when one exists."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sections = build_sections(experiment, Path(tmp))
        title = f"regbench report: {experiment}"
        (out / "report.md").write_text(render_markdown(title, sections, out))
        (out / "report.html").write_text(render_html(title, sections))
    if log_to_benchmark:
        bench = store.search_runs(experiment, "tags.`regbench.kind` = 'benchmark'")
        if not bench.empty:
            store.log_artifact_dir(str(bench["run_id"].iloc[0]), out, "report")
    return out
