"""A benchmark: every (task, split, model) cell of a study file, all in flight together as Ray work.

Scheduling: each cell is a zero-CPU Ray task (`_cell_task`) that runs the cell's study
(`harness.tuning.search.run_study`): one Optuna (TPE) search with ASHA seeded with the first seed, then one refit
per evaluation seed in `seeds`. The trials and refits of every cell are trials of one Ray Tune run, the benchmark's
`harness.tuning.trial_service.TrialService`, so a trial process outlives its cell (no import per cell) and every
trial and refit holds `cpus_per_trial`/`gpus_per_trial` (on each of its `workers_per_trial` Ray Train workers: see
`harness.tuning.trial_service`): Ray packs them onto whichever node has room; the driver
only submits cells (longest expected first, at most `cells_in_flight` at once: the slots plus one, so a cell between
its search and its refits never leaves a slot idle) and records what comes back. `cells_in_flight=1` keeps the
old cell-after-cell order (trials and refits of one cell still run in parallel).

MLflow layout (experiment = the study's `name`): one benchmark run (`regbench.kind=benchmark`, run name = study
name) → one cell run per (task, split, model) (`regbench.kind=cell`, tag `regbench.cell_config`, named
`model · task`) → one run per trial (`regbench.kind=trial`) and per evaluation seed (`regbench.kind=refit`); every
trial and refit also carries `regbench.benchmark_run_id`. The benchmark run carries the study file and the
leaderboard (its description, `mlflow.note.content`, is `leaderboard.md` plus a link to the experiment's saved runs
view `store.LEADERBOARD_VIEW`; the MLflow table `leaderboard.json` holds the same rows; `leaderboard.csv`,
`cells.csv`, `comparisons.csv` — the paired tests of every pair of models per task × split protocol, which also set
the rank groups, see `harness.benchmark.comparisons` — and `split_comparison.csv` when a task ran under several split
protocols; with a `variants:` key, `variant_board.csv` and `variant_tests.csv`: `harness.benchmark.variant_board`),
`benchmark_wall_time_s`, `slot_utilization` (`slot_utilization`), and, as it goes, the counts `cells_done`,
`cells_running`, `cells_failed`, `cells_reused`, `slots_busy` (step = seconds since the start).

A cell that cannot run (`IncompatibleError`: the model does not take the task's inputs, a checkpoint is missing)
is not a failure: it is recorded as a FINISHED cell run without metrics, tagged `regbench.status=unable` with the
reason in `regbench.skip_reason` and as the run's description, and shows on the leaderboard as "unable" with that
reason. A cell that fails (any other error) is recorded too: its cell run ends FAILED with tag
`regbench.skip_reason` (and `error.txt`). Either way the other cells go on.

Resume: re-running a study file reopens its benchmark run (the newest one with the same study name and study file
digest, tag `regbench.study_digest`) and reuses each cell whose newest FINISHED cell run in the experiment has the
same task, model and `regbench.cell_config` tag (a digest of the cell's overrides, its split included, budgets and
seeds), so editing a cell's settings re-runs exactly that cell. Failed and unable cells are always retried (an
unable cell that is still unable keeps its one run). A cell that runs again continues its Optuna search (only the
missing trials run) and reuses its finished refits (see `harness.tuning.refit`). `resume=False` recomputes every
cell: each gets a new Optuna study (`optuna_study_name` with this invocation's `generation`), so its search runs all
its trials and its refits train again (a refit is reused only within the same Optuna study); the same seeds give the
same numbers. Every board shows each cell once, the latest (`harness.benchmark.winners.mark_board`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
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

from harness.benchmark import comparisons, variant_board, winners
from harness.benchmark.failure_reason import plain, reason_of
from harness.benchmark.leaderboard import UNABLE, cell_runs, display, ranked, split_comparison, to_markdown
from harness.benchmark.study_file import Cell, StudyFile, StudyFileError, load_study
from harness.limits import check_count
from harness.plugins import make_task, source_tags
from harness.tracking import store
from harness.tracking.model_registry import register_best
from harness.tracking.run_names import cell_name
from harness.training.modeling import IncompatibleError
from harness.tuning.ray_connection import worker_places
from harness.tuning.search import StudyRequest, optuna_storage, run_study, validate_study
from harness.tuning.study_storage import default_storage
from harness.tuning.trial import enter_worker

CONFIG_TAG = "regbench.cell_config"
STUDY_DIGEST_TAG = "regbench.study_digest"
SKIP_TAG = "regbench.skip_reason"
STATUS_TAG = "regbench.status"  # UNABLE on the run of a cell that cannot run
BENCHMARK_TAG = "regbench.benchmark_run_id"  # on every trial and refit run of a benchmark
Status = Literal["finished", "reused", "failed", "unable"]


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one cell: its cell run, and why it failed if it did."""

    task: str
    model: str
    seeds: str  # the evaluation seeds, "0,1,2"
    run_id: str
    status: Status
    reason: str = ""
    split: str = ""  # the cell's `data.split` from the study file's `splits`, "" without one

    @classmethod
    def of(cls, cell: Cell, run_id: str, status: Status, reason: str = ""):
        return cls(cell.task, cell.model, ",".join(map(str, cell.seeds)), run_id, status, reason, cell.split)


@dataclass
class BenchmarkResult:
    run_id: str  # the benchmark run
    experiment: str
    cells: list[CellOutcome]
    leaderboard: pd.DataFrame  # `harness.benchmark.leaderboard.ranked` over this benchmark's cells
    comparisons: pd.DataFrame  # its paired tests (`harness.benchmark.comparisons.COLUMNS`)
    markdown: str  # the human-readable leaderboard, as logged in leaderboard.md
    wall_time_s: float
    slot_utilization: float = math.nan  # see `slot_utilization`; NaN when no cell ran


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def study_digest(study: StudyFile) -> str:
    """Digest of the study file's text: a re-run of the same file reopens the same benchmark run."""
    return _digest({"study": study.path.read_text()})


def cell_config(study: StudyFile, cell: Cell) -> str:
    """Digest of everything that defines a cell's result besides task and model names (the resume key): an outside
    plugin's origin (its version or source digest) included, so a changed plugin does not reuse old cells."""
    return _digest({"overrides": cell.overrides, "trials": study.trials, "max_epochs": study.max_epochs,
                    "seeds": list(cell.seeds), **source_tags(cell.task, cell.model)})  # fmt: skip


def optuna_study_name(study: StudyFile, cell: Cell, generation: str = "") -> str:
    """The cell's Optuna study: unique per benchmark, cell and trial-defining settings, but not per trial budget,
    so raising `trials` extends the earlier search instead of starting over; a `generation` (`--no-resume`: the
    invocation's start time) starts a new one."""
    key = _digest({"overrides": cell.overrides, "max_epochs": study.max_epochs,
                   **source_tags(cell.task, cell.model)})[:8]  # fmt: skip
    return f"{study.name}__{cell.where}__{cell.model}__s{cell.seed}__{key}" + (f"__{generation}" if generation else "")


def cell_run_name(cell: Cell) -> str:
    """`model · task`, `model · task[split]` when the study crosses splits (`harness.tracking.run_names`)."""
    return cell_name(cell.task, cell.model, cell.split)


def study_spec(
    study: StudyFile, cell: Cell, benchmark_run_id: str | None, ray_address: str | None, storage: str | None,
    service: str | None = None, generation: str = "",
) -> StudyRequest:  # fmt: skip
    return StudyRequest(
        task=cell.task, model=cell.model, overrides=cell.overrides, seed=cell.seed, seeds=cell.seeds,
        trials=study.trials,
        concurrency=study.concurrency, max_epochs=study.max_epochs, experiment=study.name,
        study_name=optuna_study_name(study, cell, generation), storage=storage,
        ray_address=ray_address, cpus_per_trial=study.cpus_per_trial, gpus_per_trial=study.gpus_per_trial,
        workers_per_trial=study.workers_per_trial,
        benchmark_run_id=benchmark_run_id, run_name=cell_run_name(cell), tags={CONFIG_TAG: cell_config(study, cell)},
        child_tags={BENCHMARK_TAG: benchmark_run_id} if benchmark_run_id else {},
        trial_service=service, progress=service is None,
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


def finished_cells(experiment: str) -> dict[tuple[str, str, str], str]:
    """(task, model, cell_config) → run id of the newest FINISHED cell run of `experiment` (not an unable
    cell's run, which has no result)."""
    runs = store.search_runs(experiment, "attributes.status = 'FINISHED' AND tags.`regbench.kind` = 'cell'")
    if runs.empty or f"tags.{CONFIG_TAG}" not in runs:
        return {}
    if f"tags.{STATUS_TAG}" in runs:
        runs = runs[runs[f"tags.{STATUS_TAG}"] != UNABLE]
    out: dict[tuple[str, str, str], str] = {}
    for _, row in runs.dropna(subset=[f"tags.{CONFIG_TAG}"]).iterrows():  # newest first: keep the first seen
        key = (row["tags.task"], row["tags.model"], row[f"tags.{CONFIG_TAG}"])
        out.setdefault(key, row["run_id"])
    return out


def run_benchmark(
    path: str | Path,
    ray_address: str | None = None,
    storage: str | None = None,
    resume: bool = True,
    progress: bool = True,
    cells_in_flight: int | None = None,
    workers_per_trial: int | None = None,
) -> BenchmarkResult:
    """Validate the study file, run (or reuse) every cell under one benchmark run, log and return the leaderboard.
    `cells_in_flight`: cells submitted at once (default: the cluster's trial slots plus one; 1 = cell after cell);
    `workers_per_trial` (`--workers-per-trial`) replaces the study file's."""
    from harness.tuning.ray_connection import ray_connection, require_resources

    study = load_study(path)
    if workers_per_trial is not None:
        check_count("workers_per_trial", workers_per_trial, "--workers-per-trial")
        study = dataclasses.replace(study, workers_per_trial=workers_per_trial)
    validate(study, ray_address, storage)
    if cells_in_flight is not None and cells_in_flight < 1:
        raise StudyFileError(study.path, 1, f"cells_in_flight={cells_in_flight} must be >= 1")
    start = time.perf_counter()
    reusable = finished_cells(study.name) if resume else {}
    generation = "" if resume else time.strftime("%Y%m%dT%H%M%S")
    tags = {"regbench.kind": "benchmark", "study_name": study.name, "study_file": str(study.path),
            STUDY_DIGEST_TAG: study_digest(study)}  # fmt: skip
    reuse = ("regbench.kind", "study_name", STUDY_DIGEST_TAG)  # re-running the same study file reopens its run
    utilization = math.nan
    cells = study.cells()
    outcomes: dict[int, CellOutcome] = {}  # by position in `cells`
    todo: list[int] = []
    for i, cell in enumerate(cells):
        key = (cell.task, cell.model, cell_config(study, cell))
        if key in reusable:
            outcomes[i] = CellOutcome.of(cell, reusable[key], "reused")
        else:
            todo.append(i)
    with ExitStack() as connected:
        if todo:  # Ray only when a cell runs; resources no node has are refused before any run opens
            connected.enter_context(ray_connection(ray_address, num_cpus=os.cpu_count() or 1))
            require_resources(study.cpus_per_trial, study.gpus_per_trial, study.workers_per_trial)
            optuna_storage(storage or default_storage())
        with store.client_run(study.name, study.name, tags, reuse=reuse) as bench:
            bench.text(study.path.read_text(), f"study/{study.path.name}")
            if todo:
                slots = trial_slots(study.cpus_per_trial, study.gpus_per_trial, study.workers_per_trial)
                since_ms = int(time.time() * 1000)
                order = _longest_first(study, {i: cells[i] for i in todo})
                ran = _run_cells(study, {i: cells[i] for i in order}, bench, ray_address, storage, slots,
                                 cells_in_flight or slots + 1, progress, reused=len(outcomes),
                                 generation=generation)  # fmt: skip
                outcomes.update(ran)
                utilization = slot_utilization(study.name, bench.run_id, since_ms, slots)
            ordered = [outcomes[i] for i in range(len(cells))]
            result = _log_board(bench, study, ordered, time.perf_counter() - start, utilization)
    return result


def _description(name: str, board: pd.DataFrame, registered: dict[str, str], link: str) -> str:
    """The benchmark run's description in the UI: the winner of each task, where the winners are registered, then
    the leaderboard and where the rest is (MLflow keeps 8,000 characters of a description: the paired tests stay
    in their artifacts, and a leaderboard that does not fit is left to `leaderboard.md`)."""
    head = [f"# {name}", "", "**Winner per task** (rank `1=`: the paired tests cannot tell the model from it)", "",
            *winners.description_lines(board), ""]  # fmt: skip
    if registered:
        head += ["Registered (Model Registry):", *(f"- {t}: `{uri}`" for t, uri in registered.items()), ""]
    tail = [f"[Every cell by task and rank]({link}) · paired tests: `comparisons.csv`, `leaderboard.md` · report: "
            "`report/report.html`"]  # fmt: skip
    text = "\n".join([*head, "## Leaderboard", "", to_markdown(display(board)), *tail])
    if len(text) > store.DESCRIPTION_LIMIT:
        text = "\n".join([*head, *tail])
    return text[: store.DESCRIPTION_LIMIT]


def _log_board(
    bench: store.ClientRun, study: StudyFile, outcomes: list[CellOutcome], wall: float, utilization: float
) -> BenchmarkResult:
    """Rank the cells' runs and log the leaderboard, comparisons, description and counts on the benchmark run."""
    rows = _rows(study.name, outcomes)
    board, table = ranked(rows)
    markdown = to_markdown(display(board)) + comparisons.markdown(board, table)
    markdown += variant_board.log_boards(bench, study, board)
    bench.table(table, "comparisons.csv")
    side_by_side = split_comparison(board)
    if len(side_by_side):
        bench.table(side_by_side, "split_comparison.csv")
        markdown += f"\n## Split protocols side by side\n\n{to_markdown(side_by_side)}"
    bench.table(board, "leaderboard.csv")
    bench.ui_table(display(board), "leaderboard.json")
    bench.text(f"# {study.name}\n\n{markdown}", "leaderboard.md")
    registered = register_best(study.name, board)
    winners.mark_board(study.name, board, rows, {o.run_id for o in outcomes})
    link = store.leaderboard_link(store.ensure_experiment(study.name), store.LEADERBOARD_VIEW)
    bench.description(_description(study.name, board, registered, link))
    bench.table(pd.DataFrame([o.__dict__ for o in outcomes]), "cells.csv")
    counts = {f"n_{s}": sum(o.status == s for o in outcomes) for s in ("finished", "reused", "failed", "unable")}
    extra = {"slot_utilization": utilization} if math.isfinite(utilization) else {}
    bench.metrics({"n_cells": len(outcomes), **counts, "benchmark_wall_time_s": wall, **extra})
    return BenchmarkResult(bench.run_id, study.name, outcomes, board, table, markdown, wall, utilization)


def trial_slots(cpus_per_trial: float, gpus_per_trial: float, workers_per_trial: int = 1) -> int:
    """How many trials or refits the connected Ray cluster holds at once (each of `workers_per_trial` workers)."""
    return max(worker_places(cpus_per_trial, gpus_per_trial) // workers_per_trial, 1)


def slot_utilization(experiment: str, bench_id: str, since_ms: int, slots: int) -> float:
    """(sum over this invocation's trial and refit runs of their wall seconds, each holding one slot) / (wall
    seconds from the first cell's submission to now × `slots`). A run's seconds are its MLflow start to end, so the
    worker's process start and imports before the run opens count as idle."""
    now = int(time.time() * 1000)
    runs = store.client().search_runs(
        [store.ensure_experiment(experiment)],
        f"tags.`{BENCHMARK_TAG}` = '{bench_id}' AND attributes.start_time >= {since_ms}",
    )
    busy = sum(((r.info.end_time or now) - r.info.start_time) / 1000 for r in runs
               if r.data.tags.get("regbench.kind") in ("trial", "refit"))  # fmt: skip
    return busy / max((now - since_ms) / 1000 * slots, 1e-9)


def _longest_first(study: StudyFile, cells: dict[int, Cell]) -> list[int]:
    """The keys of `cells` by expected duration, longest first: the mean `compute_time_s` (else, for runs logged
    before it, `study_wall_time_s`, which also counts waiting for a slot) of earlier finished runs of the same task
    and model in the experiment, else first the torch models (unknown, possibly long), then the rest."""
    from harness.plugins import get_model

    runs = store.search_runs(study.name, "attributes.status = 'FINISHED' AND tags.`regbench.kind` = 'cell'")
    known: dict[tuple[str, str], float] = {}
    if not runs.empty and "metrics.study_wall_time_s" in runs:
        cost = runs["metrics.study_wall_time_s"]
        if "metrics.compute_time_s" in runs:
            cost = runs["metrics.compute_time_s"].fillna(cost)
        means = cost.groupby([runs["tags.task"], runs["tags.model"]]).mean()
        known = {key: float(v) for key, v in means.items() if math.isfinite(v)}

    def expected(cell: Cell) -> float:
        default = math.inf if get_model(cell.model).is_torch else 0.0
        return known.get((cell.task, cell.model), default)

    return sorted(cells, key=lambda i: expected(cells[i]), reverse=True)


def _run_cells(
    study: StudyFile, cells: dict[int, Cell], bench: store.ClientRun, ray_address: str | None, storage: str | None,
    slots: int, in_flight: int, progress: bool, reused: int, generation: str = "",
) -> dict[int, CellOutcome]:  # fmt: skip
    """Submit `cells` (in their order) as Ray tasks, at most `in_flight` at once, and collect their outcomes; one
    progress bar over all cells (done / running / failed / reused and the busy slots), the same counts as
    benchmark-run metrics."""
    import ray

    from harness.tuning.trial_service import closing_service, driver_env, start_service

    remote = ray.remote(_cell_task).options(num_cpus=0, max_retries=0)
    env, cwd = driver_env(), str(Path.cwd())
    name, service = start_service(
        env, study.cpus_per_trial, study.gpus_per_trial, slots, study.name, study.workers_per_trial
    )
    queue, running, out = list(cells), {}, {}  # keys of `cells`; ref → key; key → outcome
    start = time.perf_counter()
    total = len(cells) + reused
    with tqdm(total=total, initial=reused, desc=study.name, unit="cell", disable=not progress) as bar, \
            closing_service(service):  # fmt: skip
        try:
            while queue or running:
                while queue and len(running) < in_flight:
                    key = queue.pop(0)
                    args = (study, cells[key], bench.run_id, ray_address, storage, name, env, cwd, generation)
                    running[remote.remote(*args)] = key
                ready, _ = ray.wait(list(running), num_returns=1, timeout=2.0)
                for ref in ready:
                    key = running.pop(ref)
                    out[key] = _collect(study, cells[key], bench.run_id, ref)
                    bar.update()
                failed = sum(o.status == "failed" for o in out.values())
                busy = _busy_slots(study.cpus_per_trial, study.gpus_per_trial, study.workers_per_trial)
                bar.set_postfix_str(f"running {len(running)} · failed {failed} · reused {reused} · "
                                    f"slots busy {busy}/{slots}")  # fmt: skip
                if ready or not int(time.perf_counter() - start) % 10:
                    bench.metrics({"cells_done": len(out) + reused, "cells_running": len(running),
                                   "cells_failed": failed, "cells_reused": reused, "slots_busy": busy},
                                  step=int(time.perf_counter() - start))  # fmt: skip
        except BaseException:  # Ctrl-C: stop every cell; their runs end KILLED, then `closing_service` stops the trials
            for ref in running:
                ray.cancel(ref, force=True, recursive=True)
            _end_running(study.name, bench.run_id)
            raise
    return out


def _busy_slots(cpus_per_trial: float, gpus_per_trial: float, workers_per_trial: int) -> int:
    """Trials and refits running now: the CPUs (GPUs) in use over each one's share (all its workers)."""
    import ray

    total, free = ray.cluster_resources(), ray.available_resources()
    key, share = ("GPU", gpus_per_trial) if gpus_per_trial else ("CPU", cpus_per_trial)
    share *= workers_per_trial
    return max(0, round((total.get(key, 0) - free.get(key, 0)) / share))


def _cell_task(study: StudyFile, cell: Cell, bench_id: str, ray_address: str | None, storage: str | None,
               service: str, env: dict[str, str], cwd: str, generation: str = "") -> CellOutcome:  # fmt: skip
    """One cell in a Ray worker (zero CPUs: it only drives the cell's search and refits on the `TrialService`
    called `service`)."""
    enter_worker(env, cwd)
    return _run_cell(study, cell, bench_id, ray_address, storage, service, generation)


def _collect(study: StudyFile, cell: Cell, bench_id: str, ref: object) -> CellOutcome:
    """The outcome a cell task returned; a task that died (its worker killed, out of memory) is recorded failed."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        run_id, reason = _record_failure(study, cell, bench_id, reason_of(err), plain(str(err)))
        print(f"\n{study.name}: cell {cell.label} failed: {reason}", file=sys.stderr)
        return CellOutcome.of(cell, run_id, "failed", reason)


def _end_running(experiment: str, bench_id: str) -> None:
    """End KILLED the cell, trial and refit runs of this benchmark still RUNNING (after Ctrl-C stopped them)."""
    c = store.client()
    experiment_id = store.ensure_experiment(experiment)
    cells = c.search_runs(
        [experiment_id], f"tags.`{store.PARENT_TAG}` = '{bench_id}' AND attributes.status = 'RUNNING'"
    )
    children = c.search_runs(
        [experiment_id], f"tags.`{BENCHMARK_TAG}` = '{bench_id}' AND attributes.status = 'RUNNING'"
    )
    for run in [*children, *cells]:
        c.set_tag(run.info.run_id, "regbench.ended_by", "benchmark interrupted")
        c.set_terminated(run.info.run_id, "KILLED")


def _run_cell(study: StudyFile, cell: Cell, bench_id: str, ray_address: str | None, storage: str | None,
              service: str, generation: str = "") -> CellOutcome:  # fmt: skip
    """Run one cell; record a cell that cannot run (`_record_unable`), or on any other error a FAILED cell run with
    the reason, and return what happened."""
    try:
        result = run_study(study_spec(study, cell, bench_id, ray_address, storage, service, generation))
    except IncompatibleError as err:
        reason = str(err).splitlines()[0][:500]
        print(f"\n{study.name}: cell {cell.label} cannot run: {reason}", file=sys.stderr)
        return CellOutcome.of(cell, _record_unable(study, cell, bench_id, reason), "unable", reason)
    except Exception as err:
        run_id, reason = _record_failure(study, cell, bench_id, reason_of(err), plain(traceback.format_exc()))
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
                CONFIG_TAG: digest, "split_protocol": _split_protocol(cell),
                **source_tags(cell.task, cell.model)}  # fmt: skip
        run_id = store.record_run(study.name, cell_run_name(cell), tags, bench_id)
    store.ClientRun(run_id).text(details, "error.txt")
    return run_id, reason


def _record_unable(study: StudyFile, cell: Cell, bench_id: str, reason: str) -> str:
    """The FINISHED, metric-less run of a cell that cannot run (tag `regbench.status=unable`, the reason as tag and
    description), nested under the benchmark run: the cell's earlier unable run when there is one (so re-runs add
    no runs), else a new one. Returns its id."""
    digest = cell_config(study, cell)
    tags = {"regbench.kind": "cell", "task": cell.task, "model": cell.model, "seed": cell.seed, SKIP_TAG: reason,
            CONFIG_TAG: digest, "split_protocol": _split_protocol(cell), STATUS_TAG: UNABLE,
            **source_tags(cell.task, cell.model)}  # fmt: skip
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
            return plain(text).strip().splitlines()[-1]
    return ""


def _rows(experiment: str, outcomes: list[CellOutcome]) -> pd.DataFrame:
    """The `cell_runs` rows of this benchmark's cells and their refits (reused ones included)."""
    runs = cell_runs(experiment)
    ids = {o.run_id for o in outcomes}
    return runs[runs["run_id"].isin(ids) | runs["parent_run_id"].isin(ids)]
