"""A benchmark: every (task, model, seed) cell of a study file, each tuned by `harness.tuning.search.run_study`.

MLflow layout (experiment = the study's `name`): one benchmark run (`regbench.kind=benchmark`, run name = study
name) → one cell run per (task, split, model, seed) (`regbench.kind=cell`, tag `regbench.cell_config`) → one run
per trial (`regbench.kind=trial`). A study file with `splits` runs each cell once per `data.split`; its cell runs
are named `task[split]/model/sSEED`.
The benchmark run carries the study file and the leaderboard (its description, `mlflow.note.content`, is
`leaderboard.md` plus a link to the experiment's saved runs view `store.LEADERBOARD_VIEW`; the MLflow table
`leaderboard.json` holds the same rows; `leaderboard.csv`, `cells.csv`,
`comparisons.csv` — the paired tests of every pair of models per task × split protocol, which also set the rank
groups, see `harness.benchmark.comparisons` — and `split_comparison.csv` when a task ran under several split
protocols).

A cell that cannot run (`IncompatibleError`: the model does not take the task's inputs, a checkpoint is missing)
is not a failure: it is recorded as a FINISHED cell run without metrics, tagged `regbench.status=unable` with the
reason in `regbench.skip_reason` and as the run's description, and shows on the leaderboard as "unable" with that
reason. A cell that fails (any other error) is recorded too: its cell run ends FAILED with tag
`regbench.skip_reason` (and `error.txt`). Either way the benchmark goes on.

Resume: re-running a study file reopens its benchmark run (the newest one with the same study name and study file
digest, tag `regbench.study_digest`) and reuses each cell whose newest FINISHED cell run in the experiment has the
same task, model, seed and `regbench.cell_config` tag (a digest of the cell's overrides, its split included, and
budgets), so editing a cell's settings or budgets re-runs exactly that cell. Failed and unable cells are always
retried (an unable cell that is still unable keeps its one run); `resume=False` recomputes.
Each cell's Optuna study is named after the benchmark, the cell and its settings (`optuna_study_name`), so a cell
cut short (Ctrl-C, a crash) continues its search on the next run: only the missing trials run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from tqdm.auto import tqdm

from harness.benchmark import comparisons
from harness.benchmark.leaderboard import UNABLE, cell_runs, display, ranked, split_comparison, to_markdown
from harness.benchmark.study_file import Cell, StudyFile, StudyFileError, load_study
from harness.plugins import make_task
from harness.tracking import store
from harness.training.modeling import IncompatibleError
from harness.tuning.search import StudyRequest, run_study, validate_study

CONFIG_TAG = "regbench.cell_config"
STUDY_DIGEST_TAG = "regbench.study_digest"
SKIP_TAG = "regbench.skip_reason"
STATUS_TAG = "regbench.status"  # UNABLE on the run of a cell that cannot run
Status = Literal["finished", "reused", "failed", "unable"]


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one cell: its cell run, and why it failed if it did."""

    task: str
    model: str
    seed: int
    run_id: str
    status: Status
    reason: str = ""
    split: str = ""  # the cell's `data.split` from the study file's `splits`, "" without one

    @classmethod
    def of(cls, cell: Cell, run_id: str, status: Status, reason: str = ""):
        return cls(cell.task, cell.model, cell.seed, run_id, status, reason, cell.split)


@dataclass
class BenchmarkResult:
    run_id: str  # the benchmark run
    experiment: str
    cells: list[CellOutcome]
    leaderboard: pd.DataFrame  # `harness.benchmark.leaderboard.ranked` over this benchmark's cells
    comparisons: pd.DataFrame  # its paired tests (`harness.benchmark.comparisons.COLUMNS`)
    markdown: str  # the human-readable leaderboard, as logged in leaderboard.md
    wall_time_s: float


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def study_digest(study: StudyFile) -> str:
    """Digest of the study file's text: a re-run of the same file reopens the same benchmark run."""
    return _digest({"study": study.path.read_text()})


def cell_config(study: StudyFile, cell: Cell) -> str:
    """Digest of everything that defines a cell's result besides task, model and seed (the resume key)."""
    return _digest({"overrides": cell.overrides, "trials": study.trials, "max_epochs": study.max_epochs})


def optuna_study_name(study: StudyFile, cell: Cell) -> str:
    """The cell's Optuna study: unique per benchmark, cell and trial-defining settings, but not per trial budget,
    so raising `trials` extends the earlier search instead of starting over."""
    key = _digest({"overrides": cell.overrides, "max_epochs": study.max_epochs})[:8]
    return f"{study.name}__{cell.where}__{cell.model}__s{cell.seed}__{key}"


def cell_run_name(cell: Cell) -> str:
    """`task/model/sSEED`, `task[split]/model/sSEED` when the study crosses splits."""
    return f"{cell.where}/{cell.model}/s{cell.seed}"


def study_spec(
    study: StudyFile, cell: Cell, benchmark_run_id: str | None, ray_address: str | None, storage: str | None
) -> StudyRequest:
    return StudyRequest(
        task=cell.task, model=cell.model, overrides=cell.overrides, seed=cell.seed, trials=study.trials,
        concurrency=study.concurrency, max_epochs=study.max_epochs, experiment=study.name,
        study_name=optuna_study_name(study, cell), storage=storage,
        ray_address=ray_address, cpus_per_trial=study.cpus_per_trial, gpus_per_trial=study.gpus_per_trial,
        benchmark_run_id=benchmark_run_id, run_name=cell_run_name(cell), tags={CONFIG_TAG: cell_config(study, cell)},
    )  # fmt: skip


def validate(study: StudyFile, ray_address: str | None = None, storage: str | None = None) -> None:
    """`validate_study` on every cell; an error names the study file and the line of the cell's task."""
    for cell in study.cells():
        try:
            validate_study(study_spec(study, cell, None, ray_address, storage))
        except IncompatibleError:
            continue  # a cell that cannot run is recorded with its reason when the benchmark reaches it
        except (ValueError, LookupError) as err:
            message = f"cell {cell.label}: {err}"
            raise StudyFileError(study.path, study.lines[cell.task], message) from None


def finished_cells(experiment: str) -> dict[tuple[str, str, int, str], str]:
    """(task, model, seed, cell_config) → run id of the newest FINISHED cell run of `experiment` (not an unable
    cell's run, which has no result)."""
    runs = store.search_runs(experiment, "attributes.status = 'FINISHED' AND tags.`regbench.kind` = 'cell'")
    if runs.empty or f"tags.{CONFIG_TAG}" not in runs:
        return {}
    if f"tags.{STATUS_TAG}" in runs:
        runs = runs[runs[f"tags.{STATUS_TAG}"] != UNABLE]
    out: dict[tuple[str, str, int, str], str] = {}
    for _, row in runs.dropna(subset=[f"tags.{CONFIG_TAG}"]).iterrows():  # newest first: keep the first seen
        key = (row["tags.task"], row["tags.model"], int(row["tags.seed"]), row[f"tags.{CONFIG_TAG}"])
        out.setdefault(key, row["run_id"])
    return out


def run_benchmark(
    path: str | Path,
    ray_address: str | None = None,
    storage: str | None = None,
    resume: bool = True,
    progress: bool = True,
) -> BenchmarkResult:
    """Validate the study file, run (or reuse) every cell under one benchmark run, log and return the leaderboard."""
    from harness.tuning.ray_connection import ray_connection

    study = load_study(path)
    validate(study, ray_address, storage)
    start = time.perf_counter()
    reusable = finished_cells(study.name) if resume else {}
    cells = study.cells()
    outcomes: list[CellOutcome] = []
    tags = {"regbench.kind": "benchmark", "study_name": study.name, "study_file": str(study.path),
            STUDY_DIGEST_TAG: study_digest(study)}  # fmt: skip
    reuse = ("regbench.kind", "study_name", STUDY_DIGEST_TAG)  # re-running the same study file reopens its run
    with store.client_run(study.name, study.name, tags, reuse=reuse) as bench:
        bench.text(study.path.read_text(), f"study/{study.path.name}")
        with ExitStack() as ray, tqdm(total=len(cells), desc=study.name, unit="cell", disable=not progress) as bar:
            connected = False
            for cell in cells:
                reused = reusable.get((cell.task, cell.model, cell.seed, cell_config(study, cell)))
                if reused:
                    outcomes.append(CellOutcome.of(cell, reused, "reused"))
                    bar.set_postfix_str(f"{cell.label} (reused)")
                    bar.update()
                    continue
                bar.set_postfix_str(cell.label)
                if not connected:  # one Ray instance for every cell that runs (each study reuses it)
                    ray.enter_context(ray_connection(ray_address, num_cpus=os.cpu_count() or 1))
                    connected = True
                outcomes.append(_run_cell(study, cell, bench.run_id, ray_address, storage))
                bar.update()
        board, table = ranked(_rows(study.name, outcomes))
        markdown = to_markdown(display(board)) + comparisons.markdown(board, table)
        bench.table(table, "comparisons.csv")
        side_by_side = split_comparison(board)
        if len(side_by_side):
            bench.table(side_by_side, "split_comparison.csv")
            markdown += f"\n## Split protocols side by side\n\n{to_markdown(side_by_side)}"
        wall = time.perf_counter() - start
        bench.table(board, "leaderboard.csv")
        bench.ui_table(display(board), "leaderboard.json")
        bench.text(f"# {study.name}\n\n{markdown}", "leaderboard.md")
        link = store.leaderboard_link(store.ensure_experiment(study.name))
        bench.description(f"# {study.name}\n\n{markdown}\n[All scored runs, best test_primary first]({link})\n")
        bench.table(pd.DataFrame([o.__dict__ for o in outcomes]), "cells.csv")
        counts = {f"n_{s}": sum(o.status == s for o in outcomes) for s in ("finished", "reused", "failed", "unable")}
        bench.metrics({"n_cells": len(outcomes), **counts, "benchmark_wall_time_s": wall})
    return BenchmarkResult(bench.run_id, study.name, outcomes, board, table, markdown, wall)


def _run_cell(study: StudyFile, cell: Cell, bench_id: str, ray_address: str | None, storage: str | None) -> CellOutcome:
    """Run one cell; record a cell that cannot run (`_record_unable`), or on any other error a FAILED cell run with
    the reason, and return what happened."""
    try:
        result = run_study(study_spec(study, cell, bench_id, ray_address, storage))
    except IncompatibleError as err:
        reason = str(err).splitlines()[0][:500]
        print(f"\n{study.name}: cell {cell.label} cannot run: {reason}", file=sys.stderr)
        return CellOutcome.of(cell, _record_unable(study, cell, bench_id, reason), "unable", reason)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        run_id, reason = _record_failure(study, cell, bench_id, reason, traceback.format_exc())
        print(f"\n{study.name}: cell {cell.label} failed: {reason}", file=sys.stderr)
        return CellOutcome.of(cell, run_id, "failed", reason)
    return CellOutcome.of(cell, result.parent_run_id, "finished")


def _record_failure(study: StudyFile, cell: Cell, bench_id: str, reason: str, details: str) -> tuple[str, str]:
    """Tag the cell run the failed study left behind (adding the first failed trial's error to the reason), or
    create a FAILED cell run if it never opened one; returns the run id and the reason."""
    digest = cell_config(study, cell)
    runs = store.search_runs(
        study.name,
        f"tags.`mlflow.parentRunId` = '{bench_id}' AND tags.`regbench.kind` = 'cell' AND tags.task = '{cell.task}' "
        f"AND tags.model = '{cell.model}' AND tags.seed = '{cell.seed}' AND tags.`{CONFIG_TAG}` = '{digest}' "
        "AND attributes.status != 'FINISHED'",
    )
    if not runs.empty:
        run_id = str(runs["run_id"].iloc[0])
        cause = _trial_error(study.name, run_id)
        reason = f"{reason} — {cause}"[:500] if cause else reason
        store.set_tags(run_id, {SKIP_TAG: reason})
    else:
        tags = {"regbench.kind": "cell", "task": cell.task, "model": cell.model, "seed": cell.seed, SKIP_TAG: reason,
                CONFIG_TAG: digest, "split_protocol": _split_protocol(cell)}  # fmt: skip
        run_id = store.record_run(study.name, cell_run_name(cell), tags, bench_id)
    store.ClientRun(run_id).text(details, "error.txt")
    return run_id, reason


def _record_unable(study: StudyFile, cell: Cell, bench_id: str, reason: str) -> str:
    """The FINISHED, metric-less run of a cell that cannot run (tag `regbench.status=unable`, the reason as tag and
    description), nested under the benchmark run: the cell's earlier unable run when there is one (so re-runs add
    no runs), else a new one. Returns its id."""
    digest = cell_config(study, cell)
    tags = {"regbench.kind": "cell", "task": cell.task, "model": cell.model, "seed": cell.seed, SKIP_TAG: reason,
            CONFIG_TAG: digest, "split_protocol": _split_protocol(cell), STATUS_TAG: UNABLE}  # fmt: skip
    earlier = store.search_runs(
        study.name,
        f"tags.`regbench.kind` = 'cell' AND tags.`{STATUS_TAG}` = '{UNABLE}' AND tags.task = '{cell.task}' "
        f"AND tags.model = '{cell.model}' AND tags.seed = '{cell.seed}' AND tags.`{CONFIG_TAG}` = '{digest}'",
    )
    note = f"**Cannot run** {cell.label}: {reason}"
    if earlier.empty:
        return store.record_run(study.name, cell_run_name(cell), tags, bench_id, status="FINISHED", description=note)
    run_id = str(earlier["run_id"].iloc[0])
    store.set_tags(run_id, {**tags, store.PARENT_TAG: bench_id, store.NOTE_TAG: note})
    return run_id


def _split_protocol(cell: Cell) -> str:
    """The cell's task's `split_protocol` (tagged on every cell run, so a cell that failed before its task loaded
    still sits in its split's leaderboard group); "" when the task cannot even be configured."""
    try:
        return make_task(cell.task, cell.overrides.get("data", {})).split_protocol
    except Exception:  # the failure being recorded may be this very error
        return cell.split


def _trial_error(experiment: str, cell_run_id: str) -> str:
    """The last line of the first failed trial's `error.txt` under a cell run (why no trial completed), or ""."""
    trials = store.search_runs(
        experiment, f"tags.`mlflow.parentRunId` = '{cell_run_id}' AND attributes.status = 'FAILED'"
    )
    for run_id in [] if trials.empty else list(trials["run_id"])[::-1]:  # oldest first
        text = store.read_text_artifact(run_id, "error.txt")
        if text:
            return text.strip().splitlines()[-1]
    return ""


def _rows(experiment: str, outcomes: list[CellOutcome]) -> pd.DataFrame:
    """The `cell_runs` rows of this benchmark's cells (reused ones included)."""
    runs = cell_runs(experiment)
    return runs[runs["run_id"].isin({o.run_id for o in outcomes})]
