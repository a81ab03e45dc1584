"""`regbench report`: an experiment's runs as a paper-ready report (report.md + self-contained report.html).

A header (study file and settings, date, git sha, machines), then per task a leaderboard of models (built on
`harness.benchmark.leaderboard`: FINISHED runs, the newest per seed) with the primary test metric and every other
metric logged with a 95% CI (for several seeds: the mean of their CI bounds, and the sd over seeds), parameters,
wall time, throughput and peak memory; run ids, split protocol and dataset digest, and why a model was not scored,
in collapsed details; then figures (`harness.reporting.figures`).

Ranks: one ranking with the terminal and `leaderboard.md` (`harness.benchmark.leaderboard.ranked`): models that
the Holm-adjusted paired tests do not distinguish from their group's leader share its rank, "1=" (see
`harness.benchmark.comparisons`). The report also lists those paired tests and, where a shortcut baseline was
scored, how far each model is above the best shortcut.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from harness.benchmark import comparisons, leaderboard, variant_board
from harness.reporting.figures import Section, figure_sections
from harness.reporting.render import Header, render_html, render_markdown, slug
from harness.tracking import store
from harness.tracking.run_owner import PROCESS_TAG

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
                "status": row["status"],
                "note": leaderboard.note(row),
            }
        )
    return pd.DataFrame(rows)


def _fmt(value: float, spec: str) -> str:
    return "" if pd.isna(value) else format(value, spec)


def _with_ci(values: pd.DataFrame, name: str) -> str:
    """`test_<name>` of a model's runs (rows of the experiment's run metrics): `0.871 [0.842, 0.897]` for one seed,
    `0.871 [0.840, 0.899] ± 0.012 (n=3)` for several (`leaderboard.score_text`), "" when not logged."""
    column = f"metrics.test_{name}"
    if column not in values or values[column].isna().all():
        return ""
    low, high = (values[c].mean() if c in values else math.nan for c in (f"{column}_ci_low", f"{column}_ci_high"))
    return leaderboard.score_text(values[column].mean(), low, high, values[column].std(ddof=1), len(values))


def ci_metrics(table: pd.DataFrame, metrics: pd.DataFrame) -> list[str]:
    """The test metrics beside the primary one that the task's runs log with a 95% CI, in a fixed order: AUROC,
    AUPRC, accuracy, F1, MCC for binary tasks, the per-group AUROC medians for multi-label tasks."""
    primary = table["metric"].iloc[0] if len(table) else ""
    logged = [c.removeprefix("metrics.test_").removesuffix("_ci_low") for c in metrics.columns
              if c.startswith("metrics.test_") and c.endswith("_ci_low")]  # fmt: skip
    used = metrics.loc[metrics.index.intersection([r for ids in table["run_ids"] for r in ids.split(",")])]
    present = [
        m for m in logged if f"metrics.test_{m}_ci_low" in used and used[f"metrics.test_{m}_ci_low"].notna().any()
    ]
    order = ["auroc", "auprc", "accuracy", "f1", "mcc", *sorted(m for m in present if m.startswith(f"{primary}_"))]
    return [m for m in order if m in present and m != primary]


def display_table(table: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """`task_table` formatted for people, narrow enough for a laptop: rank, model, the primary metric and every
    other metric with its 95% CI (`metrics`: the experiment's runs, metric columns, indexed by run id), then cost;
    run ids, digests and failure notes go to `run_details` / `notes`."""
    raw = table["metric"].iloc[0] if len(table) else "primary"
    metric = LABELS.get(raw, raw)
    extra = ci_metrics(table, metrics)
    rows = []
    for _, row in table.iterrows():
        used = metrics.loc[row["run_ids"].split(",")] if row["n_seeds"] > 0 else metrics.iloc[:0]
        out = {"rank": row["rank"], "model": row["model"]}
        if row["n_seeds"] == 0:
            out[f"test {metric}"] = row["status"]
        else:
            out[f"test {metric}"] = leaderboard.score_text(row["test_primary"], row["test_primary_ci_low"],
                                                           row["test_primary_ci_high"], row["test_primary_sd"],
                                                           int(row["n_seeds"]))  # fmt: skip
        out.update({_label(m, raw): _with_ci(used, m) for m in extra})
        out.update({
            "params": _fmt(row["n_params"], ",.0f"),
            "time (s)": _fmt(row["wall_time_s"], ",.0f" if row["wall_time_s"] >= 100 else ".1f"),
            "train seq/s": _fmt(row["throughput"], ",.0f"),
            "peak RSS (MB)": _fmt(row["peak_rss_mb"], ",.0f"),
            "peak GPU (MB)": _fmt(row["peak_gpu_mb"], ",.0f"),
        })  # fmt: skip
        rows.append(out)
    frame = pd.DataFrame(rows)
    return frame.drop(columns=[c for c in ("peak GPU (MB)",) if c in frame and (frame[c] == "").all()])


LABELS = {"auroc": "AUROC", "auprc": "AUPRC", "accuracy": "accuracy (t=0.5)", "f1": "F1 (t=0.5)", "mcc": "MCC (t=0.5)",
          "auroc_median": "median AUROC"}  # fmt: skip


def _label(name: str, primary: str) -> str:
    """A metric's column title: `AUROC`, or `median AUROC dnase` for a group's median of a multi-label task."""
    group = name.removeprefix(f"{primary}_")
    return LABELS.get(name, f"{LABELS.get(primary, primary)} {group}")


def run_details(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: its seeds' run ids, split protocol and dataset digest (the leaderboard's provenance)."""
    return pd.DataFrame({"model": table["model"], "seeds": table["n_seeds"], "split protocol": table["split_protocol"],
                         "dataset digest": table["dataset_digest"],
                         "run ids": table["run_ids"].str.replace(",", " ")})  # fmt: skip


def leaderboard_section(task: str, table: pd.DataFrame, metrics: pd.DataFrame) -> Section:
    """One task's leaderboard: the table, then collapsed run details and the notes of models that did not run."""
    protocols = sorted({p for p in table["split_protocol"] if p})
    digests = sorted({d for d in table["dataset_digest"] if d})
    text = (f"Split protocol {', '.join(f'`{p}`' for p in protocols) or 'not recorded'}; dataset digest "
            f"{', '.join(f'`{d}`' for d in digests) or 'not recorded'}. Rank `1=`: the paired test does not tell "
            "the model from the best (see Paired tests). Metrics: value [95% bootstrap CI] for one seed; for several, "
            "the mean [the mean of the seeds' CI bounds] ± the sd over seeds; accuracy, F1 and MCC at threshold "
            "0.5; time: tuning and refit.")  # fmt: skip
    section = Section(f"Leaderboard: {task}", text, [display_table(table, metrics)])
    scored = table[table["n_seeds"] > 0]
    if len(scored):
        section.details.append((f"runs of these {len(scored)} models (MLflow run ids, digests)", run_details(scored)))
    missing = table[table["n_seeds"] == 0]
    if len(missing):
        reasons = pd.DataFrame({"model": missing["model"], "reason": missing["note"]})
        section.details.append((f"{len(missing)} model(s) not scored on {task}: why", reasons))
    return section


PAIRED_COLUMNS = ["task", "model A", "model B", "metric", "A − B [95% CI]", "p (Holm)", "test"]


def build_sections(experiment: str, artifacts_dir: Path) -> list[Section]:
    """The report's sections: one leaderboard per task, the paired tests, the gaps to the best shortcut, the
    split protocols side by side, then the figures."""
    runs = leaderboard.cell_runs(experiment)
    if runs.empty:
        raise LookupError(
            f"experiment {experiment!r} has no scored runs (regbench.kind=cell or train) in {store.tracking_uri()}; "
            "check the name and MLFLOW_TRACKING_URI"
        )
    metrics = store.search_runs(experiment).set_index("run_id")
    board, table = leaderboard.ranked(runs)
    tables = task_tables(runs, board)
    sections = [leaderboard_section(task, t, metrics) for task, t in tables.items()]
    if len(table):
        note = ("Per pair of models scored on the same test examples, A − B of the primary metric with its 95% CI and "
                f"the p-value Holm-adjusted within each task × split protocol. {comparisons.GROUP_NOTE}")  # fmt: skip
        paired = comparisons.display(board, table)
        leaders = {(r["task"], r["split_protocol"]): r["model"] for _, r in board[board["rank"] == 1].iterrows()}
        first = [leaders.get((r["task"], r["split"])) == r["model A"] for _, r in paired.iterrows()]
        shown = paired.loc[first, [c for c in PAIRED_COLUMNS if c in paired]]
        section = Section("Paired tests", f"The best model of each task against the others. {note}", [shown])
        section.details.append((f"all {len(paired)} pairs, all columns (unadjusted p, seed sd, notes)", paired))
        sections.append(section)
    gaps = comparisons.shortcut_gaps(board, table)
    if len(gaps):
        note = ("How far each model is above the best shortcut baseline (GC content + length, length, EPI distance, "
                "element propensity) of its task, with the adjusted paired test: a model that does not beat a "
                "shortcut has not shown that it learned more than the shortcut.")  # fmt: skip
        if "split" in gaps and (gaps.groupby("task")["split"].nunique() <= 1).all():
            gaps = gaps.drop(columns="split")  # the leaderboard names each task's split protocol
        sections.append(Section("Above the best shortcut baseline", note, [gaps]))
    variants, pairs = variant_board.boards(experiment, board)
    if len(variants):
        section = Section("Variant effects", variant_board.NOTE, [variant_board.display(variants)])
        section.details.append((f"{len(pairs)} paired tests", variant_board.display_tests(pairs)))
        sections.append(section)
    side_by_side = leaderboard.split_comparison(board)
    if len(side_by_side):
        note = ("The same task and model under each split protocol; gap: best minus worst mean test score. A "
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


def header(experiment: str, runs: pd.DataFrame) -> Header:
    """The report's header: study file and settings (from the experiment's newest benchmark run, when it has one),
    date, git sha(s) of the runs, and the machines that ran them and wrote the report."""
    import yaml

    rows: list[tuple[str, str]] = [("experiment", experiment)]
    bench = store.search_runs(experiment, "tags.`regbench.kind` = 'benchmark'")
    study_text, study_name = "", ""
    if not bench.empty:
        newest = bench.iloc[0]
        study_file = str(newest.get("tags.study_file") or "")
        study_name = Path(study_file).name
        study_text = store.read_text_artifact(newest["run_id"], f"study/{study_name}") or "" if study_name else ""
        rows.append(("study file", study_file or "not recorded"))
        if study_text:
            rows.append(("settings", _settings(yaml.safe_load(study_text) or {})))
        rows.append(("benchmark run", f"{newest['run_id']} (started {newest['start_time']:%Y-%m-%d %H:%M} UTC)"))
    shas = sorted({str(s)[:10] for s in runs.get("git_sha", pd.Series(dtype=str)).dropna()})
    rows += [("date", f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC (report written)"),
             ("git sha", ", ".join(shas) or store.git_sha()[:10]),
             ("ran on", ", ".join(sorted(runs["host"].dropna().unique())) or "not recorded"),
             ("report machine", _machine())]  # fmt: skip
    return Header(rows, study_text, study_name)


def _settings(study: dict) -> str:
    """A study file's budget in one line: tasks, models, seeds, trials, epochs, tiny."""
    parts = [f"{len(study.get('tasks', []))} task(s) × {len(study.get('models', []))} model(s) × "
             f"{len(study.get('seeds', [0]))} seed(s)"]  # fmt: skip
    parts += [f"{key.replace('_', ' ')} {study[key]}" for key in ("trials", "max_epochs", "concurrency", "splits")
              if key in study]  # fmt: skip
    if study.get("tiny"):
        parts.append("tiny models")
    text = ", ".join(parts)
    return f"{study['description']}: {text}" if study.get("description") else text


def _machine() -> str:
    """This machine: host, CPUs, memory, OS, Python."""
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    return (
        f"{platform.node()} ({os.cpu_count()} CPUs{memory}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()})"
    )


def _runs_with_hosts(experiment: str, runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with the `git_sha` and `host` (of the `regbench.process` tag) of each run."""
    tags = store.search_runs(experiment).set_index("run_id")

    def tag(name: str) -> pd.Series:
        return tags[name] if name in tags else pd.Series(index=tags.index, dtype=object)

    host = tag(f"tags.{PROCESS_TAG}").dropna().map(lambda stamp: str(stamp).split(":")[0] or None)
    return runs.assign(git_sha=runs["run_id"].map(tag("tags.git_sha")), host=runs["run_id"].map(host))


def default_out(experiment: str) -> Path:
    """Where a report goes when no folder is given: `reports/<experiment>` (ignored by git)."""
    return Path("reports") / slug(experiment)


def write_report(experiment: str, out_dir: str | Path | None = None, log_to_benchmark: bool = True) -> Path:
    """Write `report.md`, `report.html` and `figures/*.png` into `out_dir` (default `default_out`; returned); log
    them to the experiment's newest benchmark run (`regbench.kind=benchmark`) under `report/` when one exists.
    Under `mlflow run` (`MLFLOW_RUN_ID`), the run MLflow opened for the report entry point holds the report too
    (`adopt_launched_run`), so it is not left empty."""
    out = Path(out_dir) if out_dir else default_out(experiment)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sections = build_sections(experiment, Path(tmp))
        head = header(experiment, _runs_with_hosts(experiment, leaderboard.cell_runs(experiment)))
        title = f"regbench report: {experiment}"
        (out / "report.md").write_text(render_markdown(title, sections, out, head))
        (out / "report.html").write_text(render_html(title, sections, head))
    bench_id = None
    if log_to_benchmark:
        bench = store.search_runs(experiment, "tags.`regbench.kind` = 'benchmark'")
        if not bench.empty:
            bench_id = str(bench["run_id"].iloc[0])
            store.log_artifact_dir(bench_id, out, "report")
    adopt_launched_run(experiment, out, bench_id)
    return out


def adopt_launched_run(experiment: str, out: Path, bench_id: str | None) -> str | None:
    """Under `mlflow run . -e report` (`MLFLOW_RUN_ID`, entry point `report`): make the run MLflow opened hold the
    report (files under `report/`, kind `report`, a description pointing at the benchmark run) instead of leaving
    it empty; returns its id. (Deleting it is not an option: MLflow ends the run again after the command exits.)"""
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if not run_id:
        return None
    c = store.client()
    run = c.get_run(run_id)
    if run.data.tags.get("mlflow.project.entryPoint") != "report":
        return None
    store.log_artifact_dir(run_id, out, "report")
    where = f" (also under report/ of the benchmark run {bench_id})" if bench_id else ""
    store.set_tags(run_id, {"regbench.kind": "report", "mlflow.runName": f"report: {experiment}",
                            store.NOTE_TAG: f"The regbench report of experiment {experiment}: report/report.html"
                            f"{where}."})  # fmt: skip
    if c.get_experiment(run.info.experiment_id).name != experiment:
        print(f"regbench report: the report is logged to the run mlflow run opened in experiment "
              f"{c.get_experiment(run.info.experiment_id).name!r}; pass --experiment-name {experiment} to keep it "
              "beside the benchmark", file=sys.stderr)  # fmt: skip
    return run_id
