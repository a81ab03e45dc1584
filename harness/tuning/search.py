"""One study cell (task × model): OptunaSearch (seeded TPE) + ASHA under Ray Tune, then the best configuration
refit once per evaluation seed; both run as trials of a `harness.tuning.trial_service.TrialService` (the
benchmark's, or one started for this study).

MLflow layout: one cell run per invocation (`model · task`, tag `regbench.kind=cell`, nested under
`benchmark_run_id` when given) created before any trial; under it one run per trial (`… · tN`, created in the
worker, see `harness.tuning.trial`) and one run per evaluation seed's refit (`… · sSEED`, `regbench.kind=refit`,
see `harness.tuning.refit`): Tune trials with the trials' resources, each logged by the same
`fit_and_log` as a `regbench train` run (full settings as params, test metrics with CIs, predictions, curves, the
model). The cell run holds the search (`trials.csv`, Optuna plots, the best trial's hyperparameters as `model.*` /
`train.*` params), the seeds' summary (`test_<m>_mean`, `test_<m>_sd`, `test_primary`, `seeds.csv`,
`test_primary_by_seed` with step = seed) and the study's own metrics.

Resume: the Optuna study lives in RDB storage under `study_name`; re-running the same study runs only
`trials - finished` new trials (finished = COMPLETE or PRUNED; failed trials are not counted) and TPE sees every
earlier trial; trials left RUNNING by a crashed driver are marked FAIL when the study is reopened; finished
refits of the same configuration and seed are reused.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from harness import paths
from harness.config import NAMESPACES, ConfigError
from harness.data.splits import CvTask
from harness.limits import WORKERS_PER_TRIAL, check_count, check_name
from harness.plugins import get_model
from harness.spec import ModelPlugin, Task
from harness.tracking import store
from harness.tracking.run_names import cell_name
from harness.training.run import load_task_data, run_tags
from harness.tuning.jobs import SearchJob
from harness.tuning.optuna_tables import close_figures, completed, optuna_storage, study_figures, trials_table
from harness.tuning.progress import TrialProgress
from harness.tuning.ray_connection import ray_connection, require_resources, require_tracking_server
from harness.tuning.refit import per_seed_table, refit_seeds, seed_summary
from harness.tuning.search_space import fixed_for_target, searched_names
from harness.tuning.study_storage import default_storage, require_trials_in_store
from harness.tuning.trial import TrialContext, run_request, split_searched
from harness.tuning.trial_service import driver_env, run_job, trial_service

if TYPE_CHECKING:
    from harness.tracking.store import RunLogger

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
    seed: int = 0  # of the search: the sampler's and the trials' training seed
    seeds: tuple[int, ...] = ()  # evaluation seeds, one refit each; default (seed,)
    trials: int = 8
    concurrency: int = 1
    max_epochs: int = 10
    experiment: str | None = None  # default: the study name
    study_name: str | None = None  # default f"{task}__{model}__s{seed}"
    storage: str | None = None  # Optuna RDB URL; default `study_storage.default_storage()`
    ray_address: str | None = None  # None: local Ray on 127.0.0.1; "auto", "host:port", "ray://host:port": attach
    cpus_per_trial: float = 1.0  # per Ray Train worker when `workers_per_trial` > 1
    gpus_per_trial: float = 0.0
    workers_per_trial: int = WORKERS_PER_TRIAL  # data-parallel Ray Train workers per trial and refit (torch models)
    benchmark_run_id: str | None = None  # the benchmark run the cell's parent run is nested under
    run_name: str | None = None  # of the cell's parent run; default "task/model/sSEED"
    tags: Mapping[str, str] = field(default_factory=dict)  # extra tags of the cell's parent run
    child_tags: Mapping[str, str] = field(default_factory=dict)  # extra tags of its trial and refit runs
    trial_service: str | None = None  # the benchmark's `TrialService` actor; None: start one for this study
    progress: bool = True  # a progress bar over the trials

    @property
    def evaluation_seeds(self) -> tuple[int, ...]:
        return tuple(self.seeds) or (self.seed,)

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
    refit_run_ids: dict[int, str] = field(default_factory=dict)  # evaluation seed → its refit run


@dataclass(frozen=True)
class _ResolvedStudy:
    task: Task
    plugin: ModelPlugin
    searched: list[str]
    storage: str


def _check_budgets(spec: StudyRequest) -> None:
    checks = {"trials": (spec.trials >= 1, ">= 1"), "concurrency": (spec.concurrency >= 1, ">= 1"),
              "max_epochs": (spec.max_epochs >= 1, ">= 1"), "cpus_per_trial": (spec.cpus_per_trial > 0, "> 0"),
              "gpus_per_trial": (spec.gpus_per_trial >= 0, ">= 0")}  # fmt: skip
    for key, (ok, hint) in checks.items():
        if not ok:
            raise ConfigError(f"study {key}={getattr(spec, key)!r} is invalid: must be {hint}")
    for key in ("trials", "concurrency", "max_epochs", "workers_per_trial"):
        check_count(key, getattr(spec, key), "study")
    for seed in (spec.seed, *spec.seeds):
        check_count("seed", seed, "study")
    check_name(spec.experiment or spec.name, "experiment")
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
    if spec.workers_per_trial > 1 and plugin.is_torch and isinstance(task, CvTask):
        raise ConfigError(f"workers_per_trial={spec.workers_per_trial} with data.split=cv: cross-validation runs "
                          "on one worker")  # fmt: skip
    searched = searched_names(plugin, fixed_for_target(spec.overrides, task.io.target))
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


def _context(
    spec: StudyRequest, plugin: ModelPlugin, parent_run_id: str, cell: str = "", target: str = "binary"
) -> TrialContext:
    """What every trial and refit of the study gets; `target`: the task's target kind (`fixed_for_target`)."""
    env = {"MLFLOW_TRACKING_URI": store.tracking_uri()}
    if paths.data_root() is not None:
        env["REGBENCH_DATA"] = str(paths.data_root())
    if os.environ.get("REGBENCH_CACHE"):
        env["REGBENCH_CACHE"] = str(Path(os.environ["REGBENCH_CACHE"]).resolve())
    return TrialContext(
        task=spec.task, model=plugin.name, fixed=fixed_for_target(spec.overrides, target), seed=spec.seed,
        max_epochs=spec.max_epochs, threads=max(1, int(spec.cpus_per_trial)), experiment=spec.experiment or spec.name,
        study_name=spec.name,
        parent_run_id=parent_run_id, cwd=str(Path.cwd()), env=env, cell_name=cell, tags=spec.child_tags,
        workers=spec.workers_per_trial if plugin.is_torch else 1, cpus=spec.cpus_per_trial, gpus=spec.gpus_per_trial,
    )  # fmt: skip


def _open_study(
    spec: StudyRequest, resolved: _ResolvedStudy
) -> tuple[optuna.storages.RDBStorage, list[optuna.trial.FrozenTrial]]:
    """Create or reopen the Optuna study; returns its storage and its finished trials."""
    storage = optuna_storage(resolved.storage)
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
    return storage, study.get_trials(deepcopy=False, states=_FINISHED)


def _finish_abandoned_trial_runs(trials: list[optuna.trial.FrozenTrial], max_epochs: int) -> None:
    """A trial Optuna holds as finished whose worker was killed (SIGKILL with the driver) between reporting its last
    epoch and closing its MLflow run: the next run ended that run KILLED as abandoned (`store.close_abandoned_runs`).
    It ran to its end, so it is FINISHED, tagged `regbench.ended_by` = study driver; it is not run again."""
    client = store.client()
    for trial in trials:
        run_id = trial.user_attrs.get("mlflow_run_id")
        try:
            run = store.get_run(run_id) if run_id else None
        except LookupError:  # deleted, or logged to another store
            continue
        abandoned = run is not None and run.data.tags.get("regbench.ended_by") == store.ABANDONED
        if abandoned and run.info.status == "KILLED":
            _finish_trial_run(client, run_id, trial, max_epochs, "study driver: Optuna holds the trial finished")


def _finish_trial_run(client: Any, run_id: str, trial: optuna.trial.FrozenTrial, max_epochs: int,
                      ended_by: str) -> None:  # fmt: skip
    """End FINISHED the run of a trial Optuna holds as finished, tagged who ended it; one stopped before
    `max_epochs` is tagged `regbench.stopped_by=scheduler`."""
    client.set_tag(run_id, "regbench.ended_by", ended_by)
    if trial.user_attrs.get("epochs", 0) < max_epochs:
        client.set_tag(run_id, "regbench.stopped_by", "scheduler")
    client.set_terminated(run_id, "FINISHED")


def _search(spec: StudyRequest, resolved: _ResolvedStudy, n_new: int, ctx: TrialContext, service: Any) -> int:
    """Run `n_new` more trials of the cell's Optuna study on `service`, with a progress bar unless `spec.progress`
    is off; returns how many trials were started again after their worker died."""
    job = SearchJob(
        key=f"{spec.name}/{ctx.parent_run_id}/search", ctx=ctx, storage=resolved.storage, n_new=n_new,
        concurrency=spec.concurrency, n_startup_trials=max(2, min(10, spec.trials // 3)),
        metric=f"val_{resolved.task.primary_metric}", early_stopping=resolved.plugin.is_torch,
    )  # fmt: skip
    with TrialProgress(n_new, job.metric, spec.name, enabled=spec.progress) as progress:
        return run_job(service, job, on_status=progress.show).retried


def end_orphans(experiment: str, parent_run_id: str, study: optuna.Study, max_epochs: int,
                grace_s: float = 5.0) -> None:  # fmt: skip
    """End the runs under the cell run that a worker left RUNNING: FINISHED when Optuna holds the trial's result
    (COMPLETE or PRUNED — a trial the scheduler stopped early is one, tagged `regbench.stopped_by=scheduler`), else
    KILLED (lost workers, Ctrl-C, refits). A finished trial that ran all `max_epochs` gets `grace_s` to end its run
    itself (it does at its last report, which Tune may see first); one ASHA stopped earlier waits in Tune's report
    until its process's next trial, so its run is ended at once."""
    client = store.client()
    trials = {t.user_attrs.get("mlflow_run_id"): t for t in study.get_trials(deepcopy=False)}
    query = f"tags.`{store.PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    experiment_id = store.ensure_experiment(experiment)

    def closing(runs: list) -> bool:  # a trial that ran all its epochs, whose worker may still be ending its run
        return any(_ran_to_end(trials.get(r.info.run_id), max_epochs) for r in runs)

    running = client.search_runs([experiment_id], query)
    deadline = time.monotonic() + grace_s
    while closing(running) and time.monotonic() < deadline:
        time.sleep(0.25)
        running = client.search_runs([experiment_id], query)
    for run in running:
        trial = trials.get(run.info.run_id)
        if trial is not None and trial.state in _FINISHED:
            _finish_trial_run(client, run.info.run_id, trial, max_epochs, "study driver")
        else:
            client.set_tag(run.info.run_id, "regbench.ended_by", "study driver")
            client.set_terminated(run.info.run_id, "KILLED")


@contextmanager
def _connected_run(spec: StudyRequest, cpus: int, experiment: str, run_name: str,
                   tags: Mapping[str, Any]) -> Iterator[RunLogger]:  # fmt: skip
    """Ray (`ray_connection`, `cpus` for a local one), then — once it can hold a trial (a study on its own; a
    benchmark checked its cluster before any run) — the cell run."""
    with ray_connection(spec.ray_address, cpus):
        if not spec.trial_service:
            require_resources(spec.cpus_per_trial, spec.gpus_per_trial, spec.workers_per_trial)
        with store.run(experiment, run_name, tags, parent_run_id=spec.benchmark_run_id) as log:
            yield log


@contextmanager
def _service(spec: StudyRequest) -> Iterator[Any]:
    """The benchmark's `TrialService` (`spec.trial_service`), else one for this study alone."""
    with trial_service(spec.trial_service, driver_env(), spec.cpus_per_trial, spec.gpus_per_trial,
                       spec.concurrency, spec.name, spec.workers_per_trial) as service:  # fmt: skip
        yield service


def _ran_to_end(trial: optuna.trial.FrozenTrial | None, max_epochs: int) -> bool:
    """Optuna holds the trial finished after all `max_epochs` (its worker ends the run itself, at that report)."""
    return trial is not None and trial.state in _FINISHED and trial.user_attrs.get("epochs", 0) >= max_epochs


def _peak(table: Any, column: str, *extra: float | None) -> float | None:
    values = [float(v) for v in [*table[column].dropna(), *extra] if v is not None and math.isfinite(float(v))]
    return max(values) if values else None


def run_study(spec: StudyRequest) -> StudyResult:
    """Search, refit the best configuration once per evaluation seed and log everything; see the module docstring."""
    start = time.perf_counter()
    resolved = _resolve(spec)
    storage, finished = _open_study(spec, resolved)
    n_done = len(finished)
    n_new = max(0, spec.trials - n_done)
    experiment = spec.experiment or spec.name
    require_trials_in_store(finished, experiment, spec.name, resolved.storage)
    digest, _ = load_task_data(resolved.task)  # the cell run is tagged with its data's digest before any trial
    seeds = spec.evaluation_seeds
    tags = {**run_tags(resolved.task, resolved.plugin.name, spec.seed, digest), "regbench.kind": "cell",
            "study_name": spec.name, "seeds": ",".join(map(str, seeds)), **spec.tags}  # fmt: skip
    run_name = spec.run_name or cell_name(resolved.task.name, resolved.plugin.name)
    workers = spec.workers_per_trial if resolved.plugin.is_torch else 1
    if workers < spec.workers_per_trial:
        print(f"note: {resolved.plugin.name} is not a torch model; its trials and refits run on one worker",
              file=sys.stderr)  # fmt: skip
    cpus = max(os.cpu_count() or 1, math.ceil(spec.concurrency * spec.cpus_per_trial))  # a local Ray: N workers
    # of a trial must fit the machine (refused otherwise), while `concurrency` trials may share its cores
    with _connected_run(spec, cpus, experiment, run_name, tags) as log:
        log.params({"study.trials": spec.trials, "study.concurrency": spec.concurrency, "study.name": spec.name,
                    "study.searched": ",".join(resolved.searched), "study.resumed_from": n_done,
                    "study.seeds": ",".join(map(str, seeds))})  # fmt: skip
        # the top-level run is open, so the runs of a killed earlier attempt have been ended
        _finish_abandoned_trial_runs(finished, spec.max_epochs)
        ctx = _context(spec, resolved.plugin, log.run_id, run_name, resolved.task.io.target)
        with _service(spec) as service:
            retried = 0
            try:
                if n_new:
                    retried = _search(spec, resolved, n_new, ctx, service)
            finally:
                end_orphans(experiment, log.run_id, optuna.load_study(study_name=spec.name, storage=storage),
                             spec.max_epochs)  # fmt: skip
            search_s = time.perf_counter() - start
            study = optuna.load_study(study_name=spec.name, storage=storage)
            table = trials_table(study)
            done = completed(study)
            n_failed = int((table["state"] == "FAIL").sum()) if len(table) else 0
            if not done:
                _log_search(log, study, table)
                raise StudyFailedError(
                    f"study {spec.name}: no trial completed ({n_failed} failed); see error.txt of the failed trial "
                    f"runs in experiment {experiment!r}"
                )
            best = max(done, key=lambda t: t.value)
            searched = split_searched(best.params)
            log.params({"study.best_trial": best.number, **store.flatten_params("model", searched["model"]),
                        **store.flatten_params("train", searched["train"])})  # fmt: skip
            try:
                refits = refit_seeds(ctx, searched, seeds, service, meanwhile=lambda: _log_search(log, study, table))
            finally:
                end_orphans(experiment, log.run_id, study, spec.max_epochs)
        summary = seed_summary(refits)
        log.table(pd.DataFrame(per_seed_table(refits)), "seeds.csv")
        for r in refits:
            if "test_primary" in r.metrics:
                log.metrics({"test_primary_by_seed": r.metrics["test_primary"]}, step=r.seed)
        trial_epochs = int(table["epochs"].fillna(0).sum())
        wall = time.perf_counter() - start
        # the cell's cost: its trials' and refits' own seconds (its wall time also counts waiting for a free slot)
        compute = float(table["wall_time_s"].fillna(0).sum()) + sum(r.metrics.get("wall_time_s", 0.0) for r in refits)
        trial_peak = _peak(table, "peak_rss_mb", summary.get("peak_rss_mb"))
        log.metrics({**summary, "study_wall_time_s": wall, "search_wall_time_s": search_s, "compute_time_s": compute,
                     "trial_epochs": trial_epochs, "n_trials": len(table) - n_failed, "n_trials_failed": n_failed,
                     "n_new_trials": n_new, "n_trials_retried": retried,
                     f"best_trial_val_{resolved.task.primary_metric}": best.value,
                     **({"peak_rss_mb": trial_peak} if trial_peak is not None else {})})  # fmt: skip
        return StudyResult(
            parent_run_id=log.run_id, best_params=dict(best.params), best_val=float(best.value),
            test_metrics={k: v for k, v in summary.items() if k.startswith("test_")},
            n_trials=len(table) - n_failed, wall_time_s=wall, trial_epochs=trial_epochs,
            n_params=int(summary.get("n_params", 0)), study_name=spec.name, experiment=experiment,
            n_new_trials=n_new, n_failed=n_failed, primary_metric=resolved.task.primary_metric,
            refit_run_ids={r.seed: r.run_id for r in refits},
        )  # fmt: skip


def _log_search(log: RunLogger, study: optuna.Study, table: pd.DataFrame) -> None:
    """The search's record on the cell run: `trials.csv` and the Optuna figures."""
    log.table(table, "trials.csv")
    figures = study_figures(study)
    for name, fig in figures.items():
        log.figure(fig, name)
    close_figures(figures)
