"""One study cell (task × model × seed): Ray Tune + OptunaSearch (seeded TPE) + ASHA, then a refit of the best.

MLflow layout: one parent run per invocation (`{task}/{model}/s{seed}`, tag `regbench.kind=cell`, nested under
`benchmark_run_id` when given) created before any trial; one child run per trial (`trial-{n}`, created in the
worker, see `harness.tuning.trial`). After the search the best configuration is refit on the driver for
`max_epochs` (with early stopping) and logged into the parent by the same `fit_and_log` as a `regbench train`
run — params under the usual `model.*` / `train.*` / `data.*` names (the refit's full configuration), test
metrics with CIs, predictions, curves and the model — plus `trials.csv`, Optuna plots and the study's own metrics.

Resume: the Optuna study lives in RDB storage under `study_name`; re-running the same study runs only
`trials - finished` new trials (finished = COMPLETE or PRUNED; failed trials are not counted) and TPE sees every
earlier trial. Trials left RUNNING by a crashed driver are marked FAIL when the study is reopened.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from harness import paths
from harness.config import NAMESPACES, ConfigError
from harness.plugins import get_model
from harness.spec import ModelPlugin, Task
from harness.tracking import store
from harness.training.run import fit_and_log, load_data, load_task_data, run_tags
from harness.tuning.optuna_tables import RecordingOptunaSearch, close_figures, completed, study_figures, trials_table
from harness.tuning.progress import TrialProgress
from harness.tuning.ray_connection import ray_connection, ray_dir, require_tracking_server
from harness.tuning.search_space import searched_names, study_space
from harness.tuning.trial import BEST_VAL, TRIAL_NUMBER, TrialContext, run_request, run_trial, split_searched

_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
_STALE = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


class StudyFailedError(RuntimeError):
    """No trial of the study completed, so there is nothing to refit."""


@dataclass(frozen=True)
class StudyRequest:
    """One cell of a benchmark: what to search, with which budget, where to run and log it."""

    task: str
    model: str
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # fixed (--set), never searched
    seed: int = 0
    trials: int = 8
    concurrency: int = 1
    max_epochs: int = 10
    experiment: str | None = None  # default: the study name
    study_name: str | None = None  # default f"{task}__{model}__s{seed}"
    storage: str | None = None  # Optuna RDB URL; default sqlite:///<cwd>/optuna.db
    ray_address: str | None = None  # None: local Ray on 127.0.0.1; "auto", "host:port", "ray://host:port": attach
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    benchmark_run_id: str | None = None  # the benchmark run the cell's parent run is nested under
    run_name: str | None = None  # of the cell's parent run; default "task/model/sSEED"
    tags: Mapping[str, str] = field(default_factory=dict)  # extra tags of the cell's parent run

    @property
    def name(self) -> str:
        return self.study_name or f"{self.task}__{self.model}__s{self.seed}"


@dataclass
class StudyResult:
    parent_run_id: str
    best_params: dict[str, Any]  # namespaced: {"model.k": 5, "train.lr": 0.001}
    best_val: float  # best trial's best val_<primary metric>
    test_metrics: dict[str, float]  # the refit's test_* metrics with CIs
    n_trials: int  # finished trials of the study (all invocations)
    wall_time_s: float  # this invocation: search + refit
    trial_epochs: int  # epochs summed over all trials of the study
    n_params: int  # of the refit best model
    study_name: str = ""
    experiment: str = ""
    n_new_trials: int = 0  # trials started by this invocation
    n_failed: int = 0  # FAIL trials of the study
    primary_metric: str = ""  # the task's primary metric, e.g. "auroc"


@dataclass(frozen=True)
class _ResolvedStudy:
    task: Task
    plugin: ModelPlugin
    searched: list[str]
    storage: str


def default_storage() -> str:
    return f"sqlite:///{Path.cwd() / 'optuna.db'}"


def _check_budgets(spec: StudyRequest) -> None:
    checks = {"trials": (spec.trials >= 1, ">= 1"), "concurrency": (spec.concurrency >= 1, ">= 1"),
              "max_epochs": (spec.max_epochs >= 1, ">= 1"), "cpus_per_trial": (spec.cpus_per_trial > 0, "> 0"),
              "gpus_per_trial": (spec.gpus_per_trial >= 0, ">= 0")}  # fmt: skip
    for key, (ok, hint) in checks.items():
        if not ok:
            raise ConfigError(f"study {key}={getattr(spec, key)!r} is invalid: must be {hint}")
    unknown = sorted(set(spec.overrides) - set(NAMESPACES))
    if unknown:
        raise ConfigError(f"unknown override namespace(s) {', '.join(unknown)}; use {', '.join(NAMESPACES)}")
    for key, flag in (("max_epochs", "--max-epochs"), ("seed", "--seed")):
        if key in spec.overrides.get("train", {}):
            raise ConfigError(f"train.{key} cannot be set in a study; use {flag}")


def _resolve(spec: StudyRequest) -> _ResolvedStudy:
    _check_budgets(spec)
    plugin = get_model(spec.model)
    ctx = _context(spec, plugin, parent_run_id="")
    fixed = run_request(ctx, {}, progress=False).resolve()  # validates every fixed setting
    task, plugin = fixed.task, fixed.plugin
    searched = searched_names(plugin, spec.overrides)
    if not searched:
        raise ConfigError(
            f"study {spec.name}: every hyperparameter of {spec.model} is fixed by --set; nothing to search"
        )
    storage = spec.storage or default_storage()
    try:
        make_url(storage)
    except ArgumentError:
        raise ConfigError(f"--storage {storage!r} is not a database URL (e.g. sqlite:///optuna.db)") from None
    if spec.ray_address:
        require_tracking_server(store.tracking_uri(), spec.ray_address)
    return _ResolvedStudy(task, plugin, searched, storage)


def validate_study(spec: StudyRequest) -> None:
    """Resolve task/model names, budgets and overrides; raise ConfigError / UnknownNameError before anything runs."""
    _resolve(spec)


def _context(spec: StudyRequest, plugin: ModelPlugin, parent_run_id: str) -> TrialContext:
    env = {"MLFLOW_TRACKING_URI": store.tracking_uri()}
    if paths.data_root() is not None:
        env["REGBENCH_DATA"] = str(paths.data_root())
    if os.environ.get("REGBENCH_CACHE"):
        env["REGBENCH_CACHE"] = str(Path(os.environ["REGBENCH_CACHE"]).resolve())
    return TrialContext(
        task=spec.task, model=plugin.name, fixed=spec.overrides, seed=spec.seed, max_epochs=spec.max_epochs,
        threads=max(1, int(spec.cpus_per_trial)), experiment=spec.experiment or spec.name, study_name=spec.name,
        parent_run_id=parent_run_id, cwd=str(Path.cwd()), env=env,
    )  # fmt: skip


def _open_study(spec: StudyRequest, resolved: _ResolvedStudy) -> tuple[optuna.storages.RDBStorage, int]:
    """Create or reopen the Optuna study; returns its storage and the number of finished trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(resolved.storage)
    study = optuna.create_study(study_name=spec.name, storage=storage, direction="maximize", load_if_exists=True)
    for key, value in {"task": resolved.task.name, "model": resolved.plugin.name, "seed": spec.seed}.items():
        if study.user_attrs.get(key, value) != value:
            raise ConfigError(
                f"study {spec.name!r} in {resolved.storage} belongs to {key}={study.user_attrs[key]!r}, not {value!r}; "
                "pick another --study-name"
            )
        study.set_user_attr(key, value)
    for trial in study.get_trials(deepcopy=False, states=_STALE):  # left behind by a crashed driver
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return storage, len(study.get_trials(deepcopy=False, states=_FINISHED))


def _search(
    spec: StudyRequest, resolved: _ResolvedStudy, storage: optuna.storages.RDBStorage, n_new: int, ctx: TrialContext
) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    space = study_space(resolved.plugin, spec.overrides)

    def define(trial: Any) -> dict[str, Any]:
        space(trial)
        return {TRIAL_NUMBER: trial.number}

    sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=max(2, min(10, spec.trials // 3)))
    searcher = RecordingOptunaSearch(
        space=define, metric=BEST_VAL, mode="max", sampler=sampler, study_name=spec.name, storage=storage
    )
    metric = f"val_{resolved.task.primary_metric}"
    asha = ASHAScheduler(metric=metric, mode="max", max_t=spec.max_epochs, grace_period=1)
    resources = {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=asha if resolved.plugin.is_torch else None,  # sklearn plugins have no epochs
            num_samples=n_new,
            max_concurrent_trials=spec.concurrency,
            reuse_actors=True,  # a warm worker process per slot: no torch/mlflow import per trial
        ),
        run_config=tune.RunConfig(
            name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(ray_dir() / "ray_results"),
            verbose=0,
            callbacks=[TrialProgress(n_new, metric, spec.name)],
        ),
    )
    tuner.fit()


def _end_orphans(experiment: str, parent_run_id: str, study: optuna.Study, max_epochs: int) -> None:
    """End trial runs that a stopped or lost worker left RUNNING: FINISHED when Optuna holds the trial's result
    after all `max_epochs`, else KILLED."""
    client = store.client()
    trials = {t.user_attrs.get("mlflow_run_id"): t for t in study.get_trials(deepcopy=False)}
    query = f"tags.`{store.PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    for run in client.search_runs([store.ensure_experiment(experiment)], query):
        trial = trials.get(run.info.run_id)
        done = trial is not None and trial.state.is_finished() and trial.user_attrs.get("epochs", 0) >= max_epochs
        client.set_tag(run.info.run_id, "regbench.ended_by", "study driver")
        client.set_terminated(run.info.run_id, "FINISHED" if done else "KILLED")


def _refit_resources(refit: dict[str, float], table: Any) -> dict[str, float]:
    """The cell's resource metrics: the refit's wall time, and memory peaks over its trials and the refit."""
    resources = {
        "refit_wall_time_s": refit["wall_time_s"],
        "peak_rss_mb": _peak(table, "peak_rss_mb", refit["peak_rss_mb"]),
        "peak_gpu_mem_mb": _peak(table, "peak_gpu_mem_mb", refit.get("cuda_peak_allocated_mb")),
    }
    return {k: v for k, v in resources.items() if v is not None}


def _peak(table: Any, column: str, *extra: float | None) -> float | None:
    values = [float(v) for v in [*table[column].dropna(), *extra] if v is not None and math.isfinite(float(v))]
    return max(values) if values else None


def run_study(spec: StudyRequest) -> StudyResult:
    """Search, refit the best configuration and log everything; see the module docstring for the layout."""
    start = time.perf_counter()
    resolved = _resolve(spec)
    storage, n_done = _open_study(spec, resolved)
    n_new = max(0, spec.trials - n_done)
    experiment = spec.experiment or spec.name
    digest, _ = load_task_data(resolved.task)  # the cell run is tagged with its data's digest before any trial
    tags = {**run_tags(resolved.task, resolved.plugin.name, spec.seed, digest), "regbench.kind": "cell",
            "study_name": spec.name, **spec.tags}  # fmt: skip
    run_name = spec.run_name or f"{resolved.task.name}/{resolved.plugin.name}/s{spec.seed}"
    with store.run(experiment, run_name, tags, parent_run_id=spec.benchmark_run_id) as log:
        log.params({"study.trials": spec.trials, "study.concurrency": spec.concurrency, "study.name": spec.name,
                    "study.searched": ",".join(resolved.searched), "study.resumed_from": n_done})  # fmt: skip
        ctx = _context(spec, resolved.plugin, log.run_id)
        try:
            if n_new:
                cpus = max(os.cpu_count() or 1, math.ceil(spec.concurrency * spec.cpus_per_trial))
                with ray_connection(spec.ray_address, cpus):
                    _search(spec, resolved, storage, n_new, ctx)
        finally:
            _end_orphans(experiment, log.run_id, optuna.load_study(study_name=spec.name, storage=storage),
                         spec.max_epochs)  # fmt: skip
        search_s = time.perf_counter() - start
        study = optuna.load_study(study_name=spec.name, storage=storage)
        table = trials_table(study)
        log.table(table, "trials.csv")
        figures = study_figures(study)
        for name, fig in figures.items():
            log.figure(fig, name)
        close_figures(figures)
        done = completed(study)
        n_failed = int((table["state"] == "FAIL").sum()) if len(table) else 0
        if not done:
            raise StudyFailedError(
                f"study {spec.name}: no trial completed ({n_failed} failed); see error.txt of the failed trial runs "
                f"in experiment {experiment!r}"
            )
        best = max(done, key=lambda t: t.value)
        log.params({"study.best_trial": best.number})
        refit_request = run_request(dataclasses.replace(ctx, threads=0), split_searched(best.params), progress=True)
        refit = refit_request.resolve(task=resolved.task)
        outcome = fit_and_log(log, refit, load_data(refit), epoch_metrics=False,
                              resources=lambda measured: _refit_resources(measured, table))  # fmt: skip
        task, result, ev = refit.task, outcome.result, outcome.evaluation
        trial_epochs = int(table["epochs"].fillna(0).sum())
        wall = time.perf_counter() - start
        log.metrics({"study_wall_time_s": wall, "search_wall_time_s": search_s, "trial_epochs": trial_epochs,
                     "n_trials": len(table) - n_failed, "n_trials_failed": n_failed, "n_new_trials": n_new,
                     f"best_trial_val_{task.primary_metric}": best.value})  # fmt: skip
        return StudyResult(
            parent_run_id=log.run_id, best_params=dict(best.params), best_val=float(best.value),
            test_metrics={k: v for k, v in ev.metrics.items() if k.startswith("test_")},
            n_trials=len(table) - n_failed, wall_time_s=wall, trial_epochs=trial_epochs, n_params=result.n_params,
            study_name=spec.name, experiment=experiment, n_new_trials=n_new, n_failed=n_failed,
            primary_metric=task.primary_metric,
        )  # fmt: skip
