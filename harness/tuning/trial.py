"""One study trial, run by Ray Tune in a worker process: train, log a child MLflow run, report every epoch.

The child run (`<cell> · t{n}`, tag `regbench.kind=trial`) is nested under the cell's parent run; its params are only
the searched hyperparameters; per-epoch metrics use step=epoch. Every epoch also goes to `ray.tune.report` with
the running best validation score (what Optuna optimises) and resource peaks (what the driver aggregates).

With `workers_per_trial` > 1 (a torch model) the trial is a Ray Train driver, as Ray recommends for Train inside
Tune: it opens the run and launches a `TorchTrainer` of that many workers (`harness.training.workers`), whose rank 0
logs each epoch into the run and reports it with `ray.train.report`; Ray's `TuneReportCallback` hands rank 0's
report to Tune, so ASHA stops such a trial as any other (Tune then ends the trial's process, and its Train run
with it: the cell's `end_orphans` ends the trial's run FINISHED, and the service removes the Train run's placement
group, `harness.tuning.trial_service`). A lost worker fails the Train run: the trial's run
ends FAILED with the reason in `error.txt`, and the trial fails with `WorkerLostError` for Tune to retry.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from harness.plugins import source_tags
from harness.tracking import store
from harness.tracking.run_names import trial_name
from harness.training.fit import fit, resolve_device
from harness.training.precision import amp_tag
from harness.training.resources import ResourceMonitor, peak_rss_mb
from harness.training.run import LoadedData, ResolvedRun, RunRequest, load_data

if TYPE_CHECKING:
    from harness.tracking.store import RunLogger
    from harness.training.workers import WorkerBody

TRIAL_NUMBER = "trial_number"  # config key carrying the Optuna trial number (not a hyperparameter)
TRAIN_RUN = "ray_train_run"  # result key of a trial on Ray Train workers: "<driver actor id>/<placement group id>"
BEST_VAL = "best_val"  # running best of val_<primary metric> over the epochs so far: what Optuna maximises
_MB = 2**20
Searched = Mapping[str, Mapping[str, Any]]  # one configuration's hyperparameters: {"model": {...}, "train": {...}}


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one study shares; pickled to the workers."""

    task: str
    model: str
    fixed: Mapping[str, Mapping[str, Any]]  # the --set settings, never searched
    seed: int
    max_epochs: int
    threads: int
    experiment: str
    study_name: str
    parent_run_id: str
    cwd: str = ""  # the driver's working directory (relative data.* paths); used where it exists
    env: Mapping[str, str] = field(default_factory=dict)  # MLFLOW_TRACKING_URI, REGBENCH_DATA, REGBENCH_CACHE
    cell_name: str = ""  # the cell's run name: trials and refits are named after it
    tags: Mapping[str, str] = field(default_factory=dict)  # on every trial and refit run (the benchmark run's id)
    workers: int = 1  # Ray Train workers per trial and refit (`workers_per_trial`; 1: in the trial's own process)
    cpus: float = 1.0  # per worker (`cpus_per_trial`)
    gpus: float = 0.0  # per worker (`gpus_per_trial`)


class WorkerLostError(RuntimeError):
    """A Ray Train worker of a trial or refit died (its process or node lost): Tune starts the trial again."""


def enter_worker(env: Mapping[str, str], cwd: str) -> None:
    """Make a Ray worker process look like the driver: its environment `env` and working directory `cwd` (where it
    exists), and no adopted `mlflow run` run (MLFLOW_RUN_ID names the launched run; no task may adopt it)."""
    os.environ.update(env)
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    os.environ.pop("MLFLOW_RUN_ID", None)


def split_searched(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`{"model.k": 4, "train.lr": 1e-3}` → `{"model": {"k": 4}, "train": {"lr": 0.001}}`."""
    out: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for key, value in config.items():
        if key != TRIAL_NUMBER:
            namespace, _, name = key.partition(".")
            out[namespace][name] = value
    return out


def run_request(ctx: TrialContext, searched: Mapping[str, Mapping[str, Any]], progress: bool) -> RunRequest:
    """The run of one configuration: fixed settings plus searched ones, with the study's seed and epoch budget."""
    train = {"progress": progress, **({"threads": ctx.threads} if ctx.threads else {})}
    overrides = {
        "model": {**ctx.fixed.get("model", {}), **searched.get("model", {})},
        "train": {**train, **ctx.fixed.get("train", {}), **searched.get("train", {})},
        "data": dict(ctx.fixed.get("data", {})),
    }
    return RunRequest(ctx.task, ctx.model, overrides, ctx.seed, ctx.max_epochs, ctx.experiment)


class _EpochLog:
    """A trial's per-epoch record: each row logged to its run (with resource peaks and wall time so far, step =
    epoch; the run ends at the last epoch) and returned as the Tune result (with the running best)."""

    def __init__(self, log: RunLogger, primary: str, max_epochs: int, device: torch.device, monitor: ResourceMonitor,
                 node_id: str) -> None:  # fmt: skip
        self.log, self.primary, self.max_epochs, self.device = log, primary, max_epochs, device
        self.monitor, self.node_id = monitor, node_id
        self.best, self.last_report_ms = -math.inf, 0

    def __call__(self, row: dict[str, float]) -> dict[str, Any]:
        epochs = int(row["epoch"])
        if math.isfinite(row.get(self.primary, math.nan)):
            self.best = max(self.best, row[self.primary])
        peaks = {"peak_rss_mb": peak_rss_mb()}
        if self.device.type == "cuda":
            peaks["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / _MB
        wall = {"wall_time_s": self.monitor.elapsed_s()}  # data load + fit so far
        self.log.metrics({**{k: v for k, v in row.items() if k != "epoch"}, **peaks, **wall}, step=epochs)
        if epochs >= self.max_epochs:  # ASHA stops every trial here, and Tune's report then waits for the
            self.log.end()  # process's next trial: the run ends now, not then
        self.last_report_ms = int(time.time() * 1000)
        return {**row, BEST_VAL: self.best if math.isfinite(self.best) else math.nan, **peaks,
                "mlflow_run_id": self.log.run_id, "ray_node_id": self.node_id}  # fmt: skip


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """One search trial of `ctx`'s study with the searched `config`, in a trial actor of the `TrialService`. Its run
    ends at the report of its last epoch, or (stopped early by ASHA) as of its last report."""
    import ray
    from ray import tune

    enter_worker(ctx.env, ctx.cwd)
    number = int(config[TRIAL_NUMBER])
    searched = {k: v for k, v in config.items() if k != TRIAL_NUMBER}
    request = run_request(ctx, split_searched(config), progress=False)
    run = request.resolve()
    task, cfg = run.task, run.cfg
    node_id = ray.get_runtime_context().get_node_id()
    primary = f"val_{task.primary_metric}"
    tags = {"regbench.kind": "trial", "study_name": ctx.study_name, "optuna_trial": number, "ray_node_id": node_id,
            "ray_trial_id": tune.get_context().get_trial_id(), "task": task.name, "model": run.plugin.name,
            "seed": ctx.seed, **ctx.tags, **source_tags(task.name, run.plugin.name)}  # fmt: skip
    device = resolve_device(cfg.device)
    tags.update(amp_tag(device, cfg.amp) if run.plugin.is_torch else {})
    if ctx.workers > 1:
        tags["workers"] = ctx.workers
    with store.run(ctx.experiment, trial_name(ctx.cell_name, number), tags, parent_run_id=ctx.parent_run_id) as log:
        log.params(searched)
        if ctx.workers > 1:
            driver = ray.get_runtime_context().get_actor_id() or ""
            on_workers(ctx, request, log, _TrialOnWorkers(primary, ctx.max_epochs, node_id, driver))
            return
        stopped = False
        with ResourceMonitor(device=device) as monitor:
            epoch_log = _EpochLog(log, primary, cfg.max_epochs, device, monitor, node_id)
            try:
                data = load_data(run)
                fit(task, run.plugin, run.hp, cfg, report=lambda row: tune.report(epoch_log(row)), splits=data.splits)
            except SystemExit:  # how tune.report ends a trial the scheduler stopped
                stopped = True
            except Exception:
                log.text(traceback.format_exc(), "error.txt")
                raise
        if stopped and not log.ended:  # stopped before its last epoch, at its last report: by ASHA, or by Tune
            killed = store.get_run(log.run_id).info.status == "KILLED"  # ending an interrupted benchmark's trials
            if not killed:
                log.tags({"regbench.stopped_by": "scheduler"})
            log.end("KILLED" if killed else "FINISHED", end_time_ms=epoch_log.last_report_ms)
        elif not log.ended:
            log.metrics(monitor.summary())
    if stopped:
        raise SystemExit(0)  # let Ray end the trial's thread as it intended


@dataclass(frozen=True)
class _TrialOnWorkers:
    """The body of a trial's Ray Train workers (`harness.training.workers.WorkerBody`): every rank reports each
    epoch with `ray.train.report` (a barrier), rank 0 with its `_EpochLog` row, which `TuneReportCallback` hands
    to Tune, plus `TRAIN_RUN` (the trial's process and the Train run's placement group, which the service removes
    once that process has ended); the others with nothing."""

    primary: str
    max_epochs: int
    node_id: str
    driver: str  # the Tune trial's actor id

    def __call__(self, run: ResolvedRun, data: LoadedData, log: RunLogger | None) -> None:
        import ray.train
        import ray.util

        if log is None:
            fit(run.task, run.plugin, run.hp, run.cfg, report=lambda row: ray.train.report({}), splits=data.splits)
            return
        device = resolve_device(run.cfg.device)
        group = ray.util.get_current_placement_group()
        train_run = {TRAIN_RUN: f"{self.driver}/{group.id.hex() if group else ''}"}
        with ResourceMonitor(device=device) as monitor:
            epoch_log = _EpochLog(log, self.primary, self.max_epochs, device, monitor, self.node_id)
            fit(run.task, run.plugin, run.hp, run.cfg, splits=data.splits,
                report=lambda row: ray.train.report({**epoch_log(row), **train_run}))  # fmt: skip
        if not log.ended:
            log.metrics(monitor.summary())


def on_workers(ctx: TrialContext, request: RunRequest, log: RunLogger, body: WorkerBody) -> None:
    """Run `body` on `ctx.workers` Ray Train workers of `ctx.cpus`/`ctx.gpus` each, rank 0 logging into `log`'s
    run (a trial passes Ray's `TuneReportCallback`, a refit reports only its end). A failure ends the run FAILED
    with `error.txt`; a lost worker raises `WorkerLostError` (Tune retries the trial)."""
    from ray import tune
    from ray.train import WorkerGroupError
    from ray.tune.integration.ray_train import TuneReportCallback

    from harness.training.workers import fit_on_workers

    callbacks = [TuneReportCallback()] if isinstance(body, _TrialOnWorkers) else []
    try:
        fit_on_workers(request, log.run_id, ctx.workers, ctx.cpus, ctx.gpus, body=body, callbacks=callbacks)
    except Exception as err:
        log.text(traceback.format_exc(), "error.txt")
        if isinstance(err, WorkerGroupError) and _lost(err):
            raise WorkerLostError(f"a Ray Train worker of trial {tune.get_context().get_trial_id()} was lost: "
                                  f"{_first_line(err)}") from None  # fmt: skip
        raise


def _lost(err: Exception) -> bool:
    """A Ray Train worker died (its process or node), as opposed to raising: Ray's health check found it gone, or
    its peers' collective broke off (torch's `DistBackendError`)."""
    from ray.exceptions import RayActorError

    failures = getattr(err, "worker_failures", {}).values()
    return any(isinstance(getattr(f, "health_check_failure", f), RayActorError | torch.distributed.DistBackendError)
               for f in failures)  # fmt: skip


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip() and not line.startswith("[Rank")]
    return (lines[0] if lines else type(err).__name__)[:300]
