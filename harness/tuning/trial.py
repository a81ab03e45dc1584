"""One study trial, run by Ray Tune in a worker process: train, log a child MLflow run, report every epoch.

The child run (`<cell> · t{n}`, tag `regbench.kind=trial`) is nested under the cell's parent run; its params are only
the searched hyperparameters; per-epoch metrics use step=epoch. Every epoch also goes to `ray.tune.report` with
the running best validation score (what Optuna optimises) and resource peaks (what the driver aggregates).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.plugins import source_tags
from harness.tracking import store
from harness.tracking.run_names import trial_name
from harness.training.fit import fit, resolve_device
from harness.training.precision import amp_tag
from harness.training.resources import ResourceMonitor, peak_rss_mb
from harness.training.run import RunRequest, load_data

TRIAL_NUMBER = "trial_number"  # config key carrying the Optuna trial number (not a hyperparameter)
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


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """One search trial of `ctx`'s study with the searched `config`, in a trial actor of the `TrialService`. Its run
    ends at the report of its last epoch, or (stopped early by ASHA) as of its last report."""
    import ray
    from ray import tune

    enter_worker(ctx.env, ctx.cwd)
    number = int(config[TRIAL_NUMBER])
    searched = {k: v for k, v in config.items() if k != TRIAL_NUMBER}
    run = run_request(ctx, split_searched(config), progress=False).resolve()
    task, cfg = run.task, run.cfg
    node_id = ray.get_runtime_context().get_node_id()
    primary = f"val_{task.primary_metric}"
    tags = {"regbench.kind": "trial", "study_name": ctx.study_name, "optuna_trial": number, "ray_node_id": node_id,
            "ray_trial_id": tune.get_context().get_trial_id(), "task": task.name, "model": run.plugin.name,
            "seed": ctx.seed, **ctx.tags, **source_tags(task.name, run.plugin.name)}  # fmt: skip
    device = resolve_device(cfg.device)
    tags.update(amp_tag(device, cfg.amp) if run.plugin.is_torch else {})
    with store.run(ctx.experiment, trial_name(ctx.cell_name, number), tags, parent_run_id=ctx.parent_run_id) as log:
        log.params(searched)
        best, epochs, stopped, last_report_ms = -math.inf, 0, False, 0

        def report(row: dict[str, float]) -> None:
            nonlocal best, epochs, last_report_ms
            epochs = int(row["epoch"])
            if math.isfinite(row.get(primary, math.nan)):
                best = max(best, row[primary])
            peaks = {"peak_rss_mb": peak_rss_mb()}
            if device.type == "cuda":
                peaks["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / _MB
            wall = {"wall_time_s": monitor.elapsed_s()}  # data load + fit so far
            log.metrics({**{k: v for k, v in row.items() if k != "epoch"}, **peaks, **wall}, step=epochs)
            if epochs >= cfg.max_epochs:  # ASHA stops every trial here, and Tune's report then waits for the
                log.end()  # process's next trial: the run ends now, not then
            last_report_ms = int(time.time() * 1000)
            tune.report({**row, BEST_VAL: best if math.isfinite(best) else math.nan, **peaks,
                         "mlflow_run_id": log.run_id, "ray_node_id": node_id})  # fmt: skip

        with ResourceMonitor(device=device) as monitor:
            try:
                data = load_data(run)
                fit(task, run.plugin, run.hp, cfg, report=report, splits=data.splits)
            except SystemExit:  # how tune.report ends a trial the scheduler stopped
                stopped = True
            except Exception:
                log.text(traceback.format_exc(), "error.txt")
                raise
        if stopped and not log.ended:  # stopped before its last epoch, at its last report: by ASHA, or by Tune
            killed = store.get_run(log.run_id).info.status == "KILLED"  # ending an interrupted benchmark's trials
            if not killed:
                log.tags({"regbench.stopped_by": "scheduler"})
            log.end("KILLED" if killed else "FINISHED", end_time_ms=last_report_ms)
        elif not log.ended:
            log.metrics(monitor.summary())
    if stopped:
        raise SystemExit(0)  # let Ray end the trial's thread as it intended
