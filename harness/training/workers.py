"""One training run data-parallel on N Ray Train workers (`regbench train --workers N`).

The driver opens the MLflow run and launches a Ray Train `TorchTrainer` (V2 API) of N workers, each holding
`cpus_per_worker` CPUs (and `gpus_per_worker` GPUs); Ray Train sets up the torch process group (gloo on CPU, NCCL
on GPU). Every worker loads the task's data (from the shared caches) and runs the same body around the rank-aware
`fit` (`harness.training.distributed`): by default (`log_fit`) rank 0 attaches to the driver's run and logs as
`regbench train` does (per-epoch metrics, evaluation, the model); the others only train. A study's trials and refits
run the same way, launched from their Tune trial (`harness.tuning.trial`, `harness.tuning.refit`). A failed worker
fails the fit (`TrainingFailedError`), and the driver's run ends FAILED. sklearn models run on one worker in the
driver, as without `--workers`.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import paths
from harness.config import ConfigError
from harness.data.splits import CvTask
from harness.training.run import LoadedData, ResolvedRun, RunRequest, fit_and_log, load_data, run_tags, train_run

if TYPE_CHECKING:
    from harness.tracking.store import RunLogger

WorkerBody = Callable[[ResolvedRun, LoadedData, "RunLogger | None"], None]  # (run, data, rank 0's log or None)
_ENV_KEYS = ("REGBENCH_DATA", "REGBENCH_CACHE", "REGBENCH_LM_CHECKPOINTS", "REGBENCH_DNABERT2")


def worker_env() -> dict[str, str]:
    """What a worker process needs of the driver's environment: the tracking URI and the data and cache roots."""
    from harness.tracking import store

    env = {"MLFLOW_TRACKING_URI": store.tracking_uri(), "PYTHONWARNINGS": "ignore::FutureWarning"}
    env |= {k: os.environ[k] for k in _ENV_KEYS if os.environ.get(k)}
    if paths.data_root() is not None:
        env["REGBENCH_DATA"] = str(paths.data_root())
    return env


def log_fit(run: ResolvedRun, data: LoadedData, log: RunLogger | None, epoch_metrics: bool = True) -> None:
    """The default worker body: rank 0 (`log` given) fits and logs as `regbench train` does, the others only
    train."""
    if log is None:
        from harness.training.fit import fit

        fit(run.task, run.plugin, run.hp, run.cfg, splits=data.splits)
    else:
        fit_and_log(log, run, data, epoch_metrics=epoch_metrics)


def _worker_loop(config: Mapping[str, Any]) -> None:
    """One Ray Train worker: the driver's environment and directory, its data, then the body (rank 0 logging)."""
    import ray.train

    os.environ.update(config["env"])
    if os.path.isdir(config["cwd"]):
        os.chdir(config["cwd"])
    os.environ.pop("MLFLOW_RUN_ID", None)
    request: RunRequest = config["request"]
    body: WorkerBody = config["body"]
    run = request.resolve()
    data = load_data(run)
    if ray.train.get_context().get_world_rank() == 0:
        from harness.tracking import store

        with store.attach(config["run_id"]) as log:
            body(run, data, log)
    else:
        body(run, data, None)


def fit_on_workers(request: RunRequest, log_run_id: str, workers: int, cpus_per_worker: float = 1.0,
                   gpus_per_worker: float = 0.0, body: WorkerBody = log_fit,
                   callbacks: Sequence[Any] = ()) -> None:  # fmt: skip
    """Run `body` for `request` data-parallel on `workers` Ray Train workers, rank 0 logging into the open run
    `log_run_id`; `callbacks` are Ray Train's (a Tune trial passes `TuneReportCallback`). Needs a connected Ray
    (`ray.init`); Train keeps its run state under `<ray dir>/ray_results`."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from harness.tuning.ray_connection import ray_dir

    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    config = {"request": request, "run_id": log_run_id, "env": worker_env(), "cwd": str(Path.cwd()), "body": body}
    scaling = ScalingConfig(num_workers=workers, use_gpu=bool(gpus_per_worker), resources_per_worker=resources)
    storage, name = str(ray_dir() / "ray_results"), f"train-{uuid.uuid4().hex[:12]}"
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if gpus_per_worker else "gloo"),
        scaling_config=scaling,
        run_config=RunConfig(storage_path=storage, name=name, callbacks=list(callbacks)),
    )
    trainer.fit()


def train_run_on_workers(request: RunRequest, workers: int) -> str:
    """`regbench train --workers N`: like `train_run`, with the fit data-parallel on N workers of a local Ray (one
    CPU each). Returns the run id."""
    cores = os.cpu_count() or 1
    if not 1 <= workers <= cores:
        raise ConfigError(f"--workers {workers}: this machine can place 1 to {cores} workers of one CPU each")
    run = request.resolve()
    if workers > 1 and isinstance(run.task, CvTask):
        raise ConfigError(f"--workers {workers} with data.split=cv: cross-validation runs on one worker")
    if workers == 1 or not run.plugin.is_torch:
        if workers > 1:
            print(f"note: {run.plugin.name} is not a torch model; it runs on one worker")
        return train_run(request)
    data = load_data(run)  # here too: the run's tags carry its digest, and the workers then read the warm caches
    from harness.tracking import store
    from harness.tracking.run_names import train_name
    from harness.tuning.ray_connection import init_local_ray, local_ray_auth

    if "ray" not in sys.modules:
        local_ray_auth()  # before ray's import: the local Ray uses a token
    import ray

    tags = {**run_tags(run.task, run.plugin.name, request.seed, data.digest), "regbench.kind": "train",
            "workers": workers}  # fmt: skip
    with store.run(request.experiment, train_name(run.task.name, run.plugin.name, request.seed), tags) as log:
        init_local_ray(num_cpus=cores)
        try:
            fit_on_workers(request, log.run_id, workers)
        finally:
            ray.shutdown()
        return log.run_id
