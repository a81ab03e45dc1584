"""One Ray Tune run for every search trial and refit of a benchmark, so trial processes outlive a cell.

A Tune trial actor is a fresh process that imports torch, MLflow and scikit-learn (≈ 3–4 s here), and Tune hands
a finished trial's actor to the next trial only within one `Tuner`. So a benchmark runs one `Tuner`, in the
`TrialService` actor (zero CPUs, owned by the benchmark's driver), and every cell feeds it: a cell submits its
search and then its refits (`harness.tuning.jobs`: how the one searcher and scheduler keep each cell's TPE and ASHA
apart) and waits until each ends (`run_job`). Every trial and refit holds `cpus_per_trial`/`gpus_per_trial` (Tune's
placement group per trial, placed by Ray on any node with room), and Tune gives a pending trial of any cell the
process a finished trial leaves. Tune keeps idle processes only for pending trials (and one more), so a benchmark
keeps its processes warm while cells are queued, and a cell after an idle pause may start one afresh.

With `workers_per_trial` > 1 a torch model's trial or refit is a Ray Train driver (`harness.tuning.trial`): its
Ray Train workers hold `cpus_per_trial`/`gpus_per_trial` each, and the Tune trial itself holds no CPU, only
`DRIVER_BUNDLE` (Tune places no trial without some resource). Tune then runs at most as many trials at once as the
cluster has room for (`max_concurrent_trials`, Ray's advice for Train inside Tune) and starts a fresh process per
trial (`reuse_actors` off): the process of a trial that ASHA stops is ended, and its Train run with it, which a
reused process would keep waiting on. sklearn models' trials still hold `cpus_per_trial`/`gpus_per_trial`.

`regbench study` starts a service for its one study (`trial_service`). Its owner closes it (`closing_service`):
Tune then stops its trial actors and removes their placement groups.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune import PlacementGroupFactory

from harness.tracking import store
from harness.tuning.jobs import (
    JOB,
    TRIAL_ERROR,
    JobScheduler,
    JobSearcher,
    JobStatus,
    RefitJob,
    SearchJob,
    TrialCall,
    add_job,
)
from harness.tuning.ray_connection import ray_dir
from harness.tuning.refit import run_refit
from harness.tuning.trial import TRAIN_RUN, WorkerLostError, enter_worker, run_trial

INTERRUPT_GRACE_S = 1.0  # seconds Tune gets to stop its trials when the driver is interrupted
TRIAL_MAX_FAILURES = 2  # times Tune starts a trial or refit again whose worker died (an error in it is not retried)
DRIVER_BUNDLE = {"memory": 256 * 2**20}  # a Ray Train driver trial's own bundle (bytes): no CPU, about its process


class TrialServiceError(RuntimeError):
    """A job failed in the service (its Optuna storage), or the benchmark's Tune run ended while a cell waited."""


def run_call(config: dict[str, Any]) -> None:
    """The one Tune trainable of a service: run the trial's `TrialCall`. A refit reports its run, node and busy
    seconds, or its error (a refit run that opened ends FAILED with `error.txt`), as its only result."""
    call: TrialCall = config[JOB]
    if call.seed is None:
        try:
            run_trial({k: v for k, v in config.items() if k != JOB}, call.ctx)
        except WorkerLostError:
            raise  # Tune starts the trial again, as when its own process died
        except Exception as err:  # reported, not raised: Tune retries only a trial whose worker died
            traceback.print_exc()  # to the trial's Ray log (its run holds error.txt)
            tune.report({TRIAL_ERROR: f"{type(err).__name__}: {err}".splitlines()[0][:500]})
        return
    try:
        result = run_refit(call.ctx, call.searched or {}, call.seed)
    except WorkerLostError:
        raise
    except Exception as err:
        traceback.print_exc()  # to the trial's Ray log
        tune.report({"refit_error": f"{type(err).__name__}: {err}".splitlines()[0][:500]})
        return
    tune.report({"refit_run_id": result.run_id, "refit_node_id": result.node_id, "refit_busy_s": result.busy_s})


def _no_result_files_notice(record: logging.LogRecord) -> bool:
    """Tune's result grid reads result files that TUNE_DISABLE_AUTO_CALLBACK_LOGGERS leaves unwritten (the results
    are in MLflow): its "Failed to fetch metrics" warning is about files regbench chose not to write."""
    return not record.getMessage().startswith("Failed to fetch metrics for")


class _CountRetries(tune.Callback):
    """Tells the searcher of every trial Tune starts again after its worker died."""

    def __init__(self, searcher: JobSearcher) -> None:
        self._searcher = searcher

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._searcher.on_trial_recover(trial.trial_id)


class _ReleaseTrainPlacementGroups(tune.Callback):
    """Removes the placement group of a Ray Train run whose Tune trial (its driver) has ended. Ray Train removes it
    itself when its run ends, and otherwise (its controller gone with the trial process that ASHA stopped) through
    its `PlacementGroupCleaner`, which needs Ray's state API: a Ray installed without the dashboard's modules (as
    here) has none, and the group would hold its CPUs until the benchmark ends. So once the trial's process is gone
    (Ray's actor table), its group is removed unless already so."""

    def __init__(self) -> None:
        self._ended: dict[str, str] = {}  # placement group id → the ended trial's actor id

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._note(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._note(trial)

    def _note(self, trial: Any) -> None:
        driver, _, group = str((trial.last_result or {}).get(TRAIN_RUN, "")).partition("/")
        if group:
            self._ended[group] = driver

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        import ray
        from ray._private.state import actors  # Ray's actor table, from its GCS (no state API)
        from ray.util.placement_group import PlacementGroup

        for group, driver in list(self._ended.items()):
            if driver and actors(driver).get("State") != "DEAD":
                continue
            placement = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group)))
            if ray.util.placement_group_table(placement).get("state") not in (None, "REMOVED"):
                ray.util.remove_placement_group(placement)
            del self._ended[group]


class _StopAll(tune.Stopper):
    """Ends the Tune run when told (`stopping`): Tune then stops its trial actors and removes their placement
    groups, which killing the service would leave holding their CPUs for the rest of the Ray job."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.stopping


class TrialService:
    """The Ray actor that runs the benchmark's one `Tuner` in a thread and takes jobs from the cells."""

    def __init__(self, env: Mapping[str, str], cwd: str, cpus: float, gpus: float, slots: int, name: str,
                 workers: int = 1) -> None:  # fmt: skip
        enter_worker(env, cwd)
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max(1, slots))  # one pending trial per slot, not one in all
        self._searcher, self._scheduler, self._stopper = JobSearcher(), JobScheduler(), _StopAll()
        self._error = ""
        tuner = tune.Tuner(
            tune.with_resources(run_call, functools.partial(trial_resources, cpus, gpus)),
            tune_config=tune.TuneConfig(
                search_alg=self._searcher,
                scheduler=self._scheduler,
                num_samples=-1,
                reuse_actors=workers == 1,
                max_concurrent_trials=max(1, slots) if workers > 1 else None,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(ray_dir() / "ray_results"),
                stop=self._stopper,
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=TRIAL_MAX_FAILURES),
                callbacks=[_CountRetries(self._searcher), _ReleaseTrainPlacementGroups()],
            ),
        )
        logging.getLogger("ray.tune.analysis.experiment_analysis").addFilter(_no_result_files_notice)
        self._thread = threading.Thread(target=self._fit, args=(tuner,), name="tune", daemon=True)
        self._thread.start()

    def _fit(self, tuner: tune.Tuner) -> None:
        try:
            tuner.fit()
        except BaseException as err:  # reported to every waiting cell
            self._error = f"{type(err).__name__}: {err}".splitlines()[0]
        else:
            self._error = "the benchmark's Tune run has ended"

    def submit(self, job: SearchJob | RefitJob) -> None:
        if not self._thread.is_alive():
            raise TrialServiceError(self._error or "the benchmark's Tune run is not running")
        add_job(job, self._searcher, self._scheduler)

    def wait(self, key: str, timeout_s: float) -> JobStatus:
        """The job's status once it is done, or after `timeout_s`; `error` set if the Tune run has died."""
        status = self._searcher.wait(key, timeout_s)
        if not status.done and not self._thread.is_alive():
            status.error = self._error
        return status

    def close(self, abort: bool = False, timeout_s: float = 60.0) -> None:
        """End the Tune run once every job has ended (`abort`: now, stopping the trials that run) and wait for Tune
        to stop its trial actors and remove their placement groups."""
        self._stopper.stopping = abort
        self._searcher.close()
        self._thread.join(timeout_s)


def trial_resources(cpus: float, gpus: float, config: Mapping[str, Any]) -> PlacementGroupFactory:
    """What one trial or refit holds: `cpus`/`gpus`, or only `DRIVER_BUNDLE` when it drives Ray Train workers."""
    call: TrialCall = config[JOB]
    if call.ctx.workers > 1:
        return PlacementGroupFactory([DRIVER_BUNDLE])
    return PlacementGroupFactory([{"CPU": cpus, "GPU": gpus}])


def start_service(env: Mapping[str, str], cpus: float, gpus: float, slots: int, label: str,
                  workers: int = 1) -> tuple[str, Any]:  # fmt: skip
    """A new `TrialService` actor (zero CPUs, owned by this process) for `slots` trials at once, each of `workers`
    Ray Train workers (torch models): its name (for `service_named` in other workers of the job) and handle."""
    import ray

    name = f"regbench-trials-{uuid.uuid4().hex[:8]}"
    remote = ray.remote(TrialService).options(name=name, num_cpus=0, max_concurrency=256, max_restarts=0)
    label = f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    return name, remote.remote(env, str(Path.cwd()), cpus, gpus, slots, label, workers)


def service_named(name: str) -> Any:
    import ray

    return ray.get_actor(name)


@contextmanager
def trial_service(name: str | None, env: Mapping[str, str], cpus: float, gpus: float, slots: int,
                  label: str, workers: int = 1) -> Iterator[Any]:  # fmt: skip
    """The service called `name` (a benchmark's), else a new one for this study, closed on the way out."""
    if name:
        yield service_named(name)
        return
    _, handle = start_service(env, cpus, gpus, slots, label, workers)
    with closing_service(handle):
        yield handle


@contextmanager
def closing_service(handle: Any) -> Iterator[None]:
    """Close the service `handle` on the way out — at once, stopping its trials, on an error; on Ctrl-C or SIGTERM
    giving Tune only `INTERRUPT_GRACE_S` (the process is leaving: its trial actors die with the service) — then
    kill its process."""
    import ray

    try:
        yield
        ray.get(handle.close.remote())
    except BaseException as err:
        grace = INTERRUPT_GRACE_S if isinstance(err, KeyboardInterrupt) else 90
        with suppress(ray.exceptions.RayError):
            ray.get(handle.close.remote(abort=True, timeout_s=grace), timeout=grace)
        raise
    finally:
        ray.kill(handle)


def run_job(service: Any, job: SearchJob | RefitJob, on_status: Callable[[JobStatus], None] = lambda s: None,
            meanwhile: Callable[[], None] = lambda: None) -> JobStatus:  # fmt: skip
    """Submit `job` to `service`, run `meanwhile`, and wait for the job to end (calling `on_status` each second)."""
    import ray

    ray.get(service.submit.remote(job))
    meanwhile()
    while True:
        status: JobStatus = ray.get(service.wait.remote(job.key, 1.0))
        on_status(status)
        if status.error:
            raise TrialServiceError(status.error)
        if status.done:
            return status


def driver_env() -> dict[str, str]:
    """The driver's settings a Ray worker needs on any node: tracking URI, data and cache roots, Ray's quiet flags."""
    keys = ("REGBENCH_DATA", "REGBENCH_CACHE", "REGBENCH_LM_CHECKPOINTS", "RAY_TMPDIR",
            "TUNE_DISABLE_SIGINT_HANDLER", "RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
            "RAY_USAGE_STATS_ENABLED",
            "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")  # fmt: skip
    env = {k: os.environ[k] for k in keys if k in os.environ}
    env["MLFLOW_TRACKING_URI"] = store.tracking_uri()
    for key in ("REGBENCH_DATA", "REGBENCH_CACHE", "RAY_TMPDIR"):
        if key in env:
            env[key] = str(Path(env[key]).resolve())
    return env
