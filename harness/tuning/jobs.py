"""How the benchmark's one Tune run keeps its cells apart: the jobs cells submit, and the searcher and scheduler
that serve them.

A cell submits a `SearchJob` (its Optuna study, the TPE seed, how many new trials, its concurrency, ASHA or not) and
then a `RefitJob` (the best configuration and the evaluation seeds) to the `harness.tuning.trial_service`.
`JobSearcher` is Tune's one searcher: it asks each search job's own `RecordingOptunaSearch` for the next
configuration (refits first, then searches in the order they came, each within its `concurrency`) and routes every
result back to it; `JobScheduler` is Tune's one trial scheduler and gives each search trial's results to its own
job's `ASHAScheduler`. So TPE and ASHA never see another cell's trials, while every trial of every cell runs in the
same pool of Tune trial actors. Each Tune trial's config carries its `TrialCall` under `JOB`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from harness.plugins import get_model
from harness.tuning.optuna_tables import RecordingOptunaSearch, optuna_storage
from harness.tuning.refit import RefitResult
from harness.tuning.search_space import study_space
from harness.tuning.trial import BEST_VAL, TRIAL_NUMBER, Searched, TrialContext

JOB = "regbench_call"  # the config key of a Tune trial's `TrialCall`
TRIAL_ERROR = "trial_error"  # a search trial's last result when it raised: the trial FAILs and is not retried
_IDLE_WAIT_S = 600.0  # Tune's own limit on waiting for a next trial


@dataclass(frozen=True)
class TrialCall:
    """What one Tune trial runs: a search trial of `ctx`'s study, or (with `seed`) the refit of `searched`."""

    job: str
    ctx: TrialContext
    searched: Searched | None = None
    seed: int | None = None

    def __repr__(self) -> str:  # Tune names each trial's folder after its config: keep it short
        return f"{self.ctx.cell_name or self.ctx.study_name}" + (f"-s{self.seed}" if self.seed is not None else "")


@dataclass(frozen=True)
class SearchJob:
    """A cell's search: `n_new` more trials of the Optuna study `ctx.study_name` in `storage`."""

    key: str
    ctx: TrialContext
    storage: str  # Optuna RDB URL
    n_new: int
    concurrency: int
    n_startup_trials: int  # TPE's random trials
    metric: str  # val_<primary metric>: what ASHA compares per epoch
    early_stopping: bool  # ASHA (torch models: epochs) or none (sklearn)


@dataclass(frozen=True)
class RefitJob:
    """A cell's refits: `searched` trained once per seed in `seeds`."""

    key: str
    ctx: TrialContext
    searched: Searched
    seeds: tuple[int, ...]


@dataclass
class JobStatus:
    """Where a job stands: trials ended (completed, stopped early or failed), the best `best_val` so far, and per
    refit seed its `RefitResult` (its `metrics` left to the caller, who reads them from the run) or its error."""

    done: bool = False
    ended: int = 0
    failed: int = 0
    best: float = -math.inf
    refits: dict[int, RefitResult] = field(default_factory=dict)
    refit_errors: dict[int, str] = field(default_factory=dict)
    error: str = ""  # the job failed (its Optuna storage), or the service's Tune run did
    retried: int = 0  # trials started again after their worker died (Tune's `max_failures`)


class _Active:
    """A submitted job inside the service: what it still has to start, what it runs now, its status."""

    def __init__(self, job: SearchJob | RefitJob, searcher: Searcher | None) -> None:
        self.job, self.searcher = job, searcher
        self.left: list[int | None] = list(job.seeds) if isinstance(job, RefitJob) else [None] * job.n_new
        self.running: dict[str, int | None] = {}  # Tune trial id → refit seed (None: a search trial)
        self.status = JobStatus(done=not self.left)

    def next_config(self, trial_id: str) -> dict[str, Any] | None:
        if not self.left:
            return None
        if isinstance(self.job, RefitJob):
            seed = self.left.pop(0)
            self.running[trial_id] = seed
            return {JOB: TrialCall(self.job.key, self.job.ctx, self.job.searched, seed)}
        if len(self.running) >= self.job.concurrency:
            return None
        assert self.searcher is not None
        config = self.searcher.suggest(trial_id)
        if config is None:
            return None
        self.left.pop()
        self.running[trial_id] = None
        return {**config, JOB: TrialCall(self.job.key, self.job.ctx)}


def _optuna_searcher(job: SearchJob) -> Searcher:
    """The job's own TPE search over its model's space, on its Optuna study."""
    space = study_space(get_model(job.ctx.model), job.ctx.fixed)

    def define(trial: Any) -> dict[str, Any]:
        space(trial)
        return {TRIAL_NUMBER: trial.number}

    sampler = optuna.samplers.TPESampler(seed=job.ctx.seed, n_startup_trials=job.n_startup_trials)
    return RecordingOptunaSearch(space=define, metric=BEST_VAL, mode="max", sampler=sampler,
                                 study_name=job.ctx.study_name, storage=optuna_storage(job.storage))  # fmt: skip


class JobSearcher(Searcher):
    """Tune's one searcher for every job: the next configuration of the first job that can start one (refits
    first), routed results, and FINISHED once the service is closed and every job has ended."""

    def __init__(self) -> None:
        super().__init__(metric=None, mode=None)
        self._lock = threading.Condition()  # notified when a job is added, changes, or the service closes
        self._jobs: dict[str, _Active] = {}  # submitted, not yet ended, in submission order
        self._statuses: dict[str, JobStatus] = {}
        self._of: dict[str, _Active] = {}  # Tune trial id → its job
        self._closed = False

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # every job carries its own metric

    def save(self, checkpoint_path: str) -> None:
        """Skip Tune's searcher checkpoint: each job's study lives in its Optuna storage, where resume reopens it."""

    def __getstate__(self) -> dict[str, Any]:  # the Tuner pickles its settings when made, before any job
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Condition())

    def add(self, active: _Active) -> None:
        with self._lock:
            self._statuses[active.job.key] = active.status
            if not active.status.done:
                self._jobs[active.job.key] = active
            self._lock.notify_all()

    def wait(self, key: str, timeout_s: float) -> JobStatus:
        """The job's status once it is done, or after `timeout_s`."""
        with self._lock:
            self._lock.wait_for(lambda: self._statuses[key].done, timeout_s)
            status = self._statuses[key]
            return replace(status, refits=dict(status.refits), refit_errors=dict(status.refit_errors))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next trial's configuration, None when no job can start one now. With no trial in flight, Tune is
        idle and would poll again only after a second: then this waits (up to `_IDLE_WAIT_S`) for a job instead."""
        with self._lock:
            if not self._of:
                self._lock.wait_for(lambda: self._closed or self._jobs, _IDLE_WAIT_S)
            if self._closed and not self._jobs:
                return Searcher.FINISHED
            for active in sorted(self._jobs.values(), key=lambda a: not isinstance(a.job, RefitJob)):
                try:
                    config = active.next_config(trial_id)
                except Exception as err:  # its Optuna storage failed: that job fails, not the benchmark's Tune run
                    self._fail(active, err)
                    continue
                if config is not None:
                    self._of[trial_id] = active
                    return config
        return None

    def _fail(self, active: _Active, err: Exception) -> None:
        active.status.error = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        active.status.done = True
        self._jobs.pop(active.job.key, None)
        self._lock.notify_all()

    def on_trial_recover(self, trial_id: str) -> None:
        """Tune starts the trial again (its worker died): counted on its job's status."""
        with self._lock:
            if (active := self._of.get(trial_id)) is not None:
                active.status.retried += 1

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        with self._lock:
            active = self._of.get(trial_id)
            if active is None or active.searcher is None or TRIAL_ERROR in result:
                return
            try:
                active.searcher.on_trial_result(trial_id, result)
            except Exception as err:
                self._fail(active, err)
            value = result.get(BEST_VAL)
            if isinstance(value, float) and math.isfinite(value):
                active.status.best = max(active.status.best, value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        with self._lock:
            active = self._of.pop(trial_id, None)
            if active is None:
                return
            error = error or TRIAL_ERROR in (result or {})
            seed = active.running.pop(trial_id, None)
            status = active.status
            if active.searcher is not None:
                try:
                    active.searcher.on_trial_complete(trial_id, result, error)
                except Exception as err:
                    self._fail(active, err)
            elif seed is not None:
                last = result or {}
                if error or "refit_run_id" not in last:
                    status.refit_errors[seed] = last.get("refit_error", "the refit's Ray actor failed")
                else:
                    status.refits[seed] = RefitResult(seed, last["refit_run_id"], last["refit_node_id"], {},
                                                      last["refit_busy_s"])  # fmt: skip
            status.ended += 1
            status.failed += int(error)
            if not active.left and not active.running:
                status.done = True
                self._jobs.pop(active.job.key, None)
            self._lock.notify_all()


class JobScheduler(FIFOScheduler):
    """Tune's one trial scheduler: each search job's trials go to that job's own ASHA; refits and sklearn searches
    run to their end. Trials start first come, first served."""

    def __init__(self) -> None:
        super().__init__()
        self._by_job: dict[str, TrialScheduler] = {}

    def add(self, key: str, scheduler: TrialScheduler) -> None:
        self._by_job[key] = scheduler

    def _of(self, trial: Any) -> TrialScheduler | None:
        call = trial.config.get(JOB)
        return self._by_job.get(call.job) if call is not None else None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if (scheduler := self._of(trial)) is not None:
            scheduler.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        scheduler = self._of(trial)
        return scheduler.on_trial_result(tune_controller, trial, result) if scheduler else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if (scheduler := self._of(trial)) is not None:
            scheduler.on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        if (scheduler := self._of(trial)) is not None:
            scheduler.on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if (scheduler := self._of(trial)) is not None:
            scheduler.on_trial_remove(tune_controller, trial)


def add_job(job: SearchJob | RefitJob, searcher: JobSearcher, scheduler: JobScheduler) -> None:
    """Give `job` to the Tune run's searcher (a search with its own Optuna search) and scheduler (its own ASHA)."""
    own = None
    if isinstance(job, SearchJob):
        own = _optuna_searcher(job)
        if job.early_stopping:
            scheduler.add(job.key, ASHAScheduler(metric=job.metric, mode="max", max_t=job.ctx.max_epochs,
                                                 grace_period=1))  # fmt: skip
    searcher.add(_Active(job, own))
