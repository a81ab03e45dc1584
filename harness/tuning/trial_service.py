"""One Ray Tune run for every search trial and refit of a benchmark, so trial processes outlive a cell.

A Tune trial actor is a fresh process that imports torch, MLflow and scikit-learn (≈ 3–4 s here), and Tune hands
a finished trial's actor to the next trial only within one `Tuner`. So a benchmark runs one `Tuner`, in the
`TrialService` actor (zero CPUs, owned by the benchmark's driver), and every cell feeds it: a cell submits its
search and then its refits (`harness.tuning.jobs`: how the one searcher and scheduler keep each cell's TPE and ASHA
apart) and waits until each ends (`run_job`). Every trial and refit holds `cpus_per_trial`/`gpus_per_trial` (Tune's
placement group per trial, placed by Ray on any node with room), and Tune gives a pending trial of any cell the
process a finished trial leaves. Tune keeps idle processes only for pending trials (and one more), so a benchmark
keeps its processes warm while cells are queued, and a cell after an idle pause may start one afresh.

`regbench study` starts a service for its one study (`trial_service`). Its owner closes it (`closing_service`):
Tune then stops its trial actors and removes their placement groups.
"""

from __future__ import annotations

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
from harness.tuning.trial import enter_worker, run_trial

INTERRUPT_GRACE_S = 1.0  # seconds Tune gets to stop its trials when the driver is interrupted
TRIAL_MAX_FAILURES = 2  # times Tune starts a trial or refit again whose worker died (an error in it is not retried)


class TrialServiceError(RuntimeError):
    """A job failed in the service (its Optuna storage), or the benchmark's Tune run ended while a cell waited."""


def run_call(config: dict[str, Any]) -> None:
    """The one Tune trainable of a service: run the trial's `TrialCall`. A refit reports its run, node and busy
    seconds, or its error (a refit run that opened ends FAILED with `error.txt`), as its only result."""
    call: TrialCall = config[JOB]
    if call.seed is None:
        try:
            run_trial({k: v for k, v in config.items() if k != JOB}, call.ctx)
        except Exception as err:  # reported, not raised: Tune retries only a trial whose worker died
            traceback.print_exc()  # to the trial's Ray log (its run holds error.txt)
            tune.report({TRIAL_ERROR: f"{type(err).__name__}: {err}".splitlines()[0][:500]})
        return
    try:
        result = run_refit(call.ctx, call.searched or {}, call.seed)
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

    def __init__(self, env: Mapping[str, str], cwd: str, cpus: float, gpus: float, slots: int, name: str) -> None:
        enter_worker(env, cwd)
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max(1, slots))  # one pending trial per slot, not one in all
        self._searcher, self._scheduler, self._stopper = JobSearcher(), JobScheduler(), _StopAll()
        self._error = ""
        tuner = tune.Tuner(
            tune.with_resources(run_call, {"cpu": cpus, "gpu": gpus}),
            tune_config=tune.TuneConfig(
                search_alg=self._searcher, scheduler=self._scheduler, num_samples=-1, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(ray_dir() / "ray_results"),
                stop=self._stopper,
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=TRIAL_MAX_FAILURES),
                callbacks=[_CountRetries(self._searcher)],
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


def start_service(env: Mapping[str, str], cpus: float, gpus: float, slots: int, label: str) -> tuple[str, Any]:
    """A new `TrialService` actor (zero CPUs, owned by this process) for `slots` trials at once: its name (for
    `service_named` in other workers of the job) and handle."""
    import ray

    name = f"regbench-trials-{uuid.uuid4().hex[:8]}"
    remote = ray.remote(TrialService).options(name=name, num_cpus=0, max_concurrency=256, max_restarts=0)
    return name, remote.remote(env, str(Path.cwd()), cpus, gpus, slots, f"{label}-{time.strftime('%Y%m%d-%H%M%S')}")


def service_named(name: str) -> Any:
    import ray

    return ray.get_actor(name)


@contextmanager
def trial_service(name: str | None, env: Mapping[str, str], cpus: float, gpus: float, slots: int,
                  label: str) -> Iterator[Any]:  # fmt: skip
    """The service called `name` (a benchmark's), else a new one for this study, closed on the way out."""
    if name:
        yield service_named(name)
        return
    _, handle = start_service(env, cpus, gpus, slots, label)
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
