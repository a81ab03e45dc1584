"""`regbench report`: an experiment's runs as a paper-ready report (report.md + self-contained report.html).

Per task, a leaderboard of models (built on `harness.benchmark.leaderboard`: FINISHED runs, the newest per seed)
with the primary test metric and its uncertainty, AUPRC, F1, MCC, parameters, wall time, throughput, peak memory, split
protocol, dataset digest and run ids; then figures (`harness.reporting.figures`).

Ranks: one ranking with the terminal and `leaderboard.md` (`harness.benchmark.leaderboard.ranked`): models that
the Holm-adjusted paired tests do not distinguish from their group's leader share its rank, "1=" (see
`harness.benchmark.comparisons`). The report also lists those paired tests and, where a shortcut baseline was
scored, how far each model is above the best shortcut.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from harness.benchmark import comparisons, leaderboard
from harness.reporting.figures import Section, figure_sections
from harness.reporting.render import render_html, render_markdown
from harness.tracking import store

REPORT_FILES = ("report.md", "report.html")


def task_table(runs: pd.DataFrame, board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard of one task (its rows `board` of a ranked leaderboard, one split protocol): one row per
    model, sorted, with the leaderboard's rank groups (numeric columns kept raw)."""
    by_id = runs.set_index("run_id")
    rows = []
    for _, row in board.sort_values("test_primary", ascending=False, na_position="last", kind="stable").iterrows():
        used = by_id.loc[row["run_ids"].split(",")] if row["status"] == "ok" else by_id.loc[[]]
        rows.append(
            {
                "rank": row["group"],
                "model": row["model"],
                "metric": row["primary_metric"],
                "n_seeds": int(row["n_seeds"]),
                "test_primary": row["test_primary"],
                "test_primary_sd": row["test_primary_sd"],
                "test_primary_ci_low": row["test_primary_ci_low"],
                "test_primary_ci_high": row["test_primary_ci_high"],
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
    return pd.DataFrame(rows)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """`task_table` formatted for people: `0.871 [0.842, 0.897]` (one seed) or `0.871 ± 0.012 (n=3)`."""

    def fmt(value: float, spec: str) -> str:
        return "" if pd.isna(value) else format(value, spec)

    def score(row: pd.Series) -> str:
        if row["n_seeds"] == 0:
            return "failed"
        if row["n_seeds"] > 1:
            return f"{row['test_primary']:.3f} ± {fmt(row['test_primary_sd'], '.3f')} (n={row['n_seeds']})"
        low, high = fmt(row["test_primary_ci_low"], ".3f"), fmt(row["test_primary_ci_high"], ".3f")
        return f"{row['test_primary']:.3f} [{low}, {high}]" if low else f"{row['test_primary']:.3f}"

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
    """The report's sections: one leaderboard per task, the paired tests, the gaps to the best shortcut, the
    split protocols side by side, then the figures."""
    runs = leaderboard.cell_runs(experiment)
    if runs.empty:
        raise LookupError(
            f"experiment {experiment!r} has no scored runs (regbench.kind=cell or train) in {store.tracking_uri()}; "
            "check the name and MLFLOW_TRACKING_URI"
        )
    board, table = leaderboard.ranked(runs)
    tables = task_tables(runs, board)
    sections = [
        Section(f"Leaderboard: {task}", comparisons.GROUP_NOTE, [display_table(t)]) for task, t in tables.items()
    ]
    if len(table):
        note = ("Per pair of models scored on the same test examples, A − B of the primary metric with its 95% CI and "
                "p-values (Holm-adjusted within each task × split protocol); seed sd: sd of each model's metric "
                "over its seeds.")  # fmt: skip
        sections.append(Section("Paired tests", note, [comparisons.display(board, table)]))
    gaps = comparisons.shortcut_gaps(board, table)
    if len(gaps):
        note = ("How far each model is above the best shortcut baseline (GC content + length, length, EPI distance, "
                "element propensity) of its task, with the adjusted paired test: a model that does not beat a "
                "shortcut has not shown that it learned more than the shortcut.")  # fmt: skip
        sections.append(Section("Above the best shortcut baseline", note, [gaps]))
    side_by_side = leaderboard.split_comparison(board)
    if len(side_by_side):
        note = ("The same task and model under each split protocol; `gap`: best minus worst mean test score. A "
                "large gap between a random and a chromosome split is leakage, not skill.")  # fmt: skip
        sections.append(Section("Split protocols side by side", note, [side_by_side]))
    return sections + figure_sections(experiment, runs, tables, artifacts_dir)


def task_tables(runs: pd.DataFrame, board: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`task_table` per task, or per task and split protocol (`"task [protocol]"`) for a task run under several."""
    tables: dict[str, pd.DataFrame] = {}
    for task in sorted(board["task"].dropna().unique()):
        rows = board[board["task"] == task]
        splits = sorted(rows["split_protocol"].unique())
        for split in splits:
            name = task if len(splits) == 1 else f"{task} [{split}]"
            tables[name] = task_table(runs, rows[rows["split_protocol"] == split])
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
