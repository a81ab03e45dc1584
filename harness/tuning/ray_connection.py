"""Connecting a study to Ray: a local instance on 127.0.0.1 (default) or an existing cluster.

A local instance keeps its files under `$RAY_TMPDIR` (else `./.ray`, created 0700), has no dashboard and no usage
stats, and is shut down afterwards; its session folder, which Ray leaves 0777, is narrowed to 0700. It requires
Ray's token auth: `local_ray_auth()` sets `RAY_AUTH_MODE=token` and points `RAY_AUTH_TOKEN_PATH` at
`<ray dir>/auth_token` (created once, mode 0600) — it must run before `ray` is first imported, since Ray reads these
settings at import (the CLI calls it for every command that may start a local Ray). On Linux Ray turns a node
address of 127.0.0.1 into the machine's outward address and listens on all interfaces, unless
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (Ray's switch for single-machine Rays, read at import), which
`local_ray_auth()` also sets: then every server of a local Ray listens on 127.0.0.1 only (checked with `ss -ltn`).
Attaching (`auto`, `host:port`, `ray://host:port`) needs an MLflow tracking server, since
trials on other nodes cannot write to the driver's SQLite file.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.config import ConfigError

_QUIET_WARNINGS = "ignore:The pynvml package is deprecated:FutureWarning"
# Every worker of the job: a reused trial actor waits up to a minute (Tune's default: 2 s) for the previous trial's
# thread to close its MLflow run, instead of failing with "runner reuse requires reset_config()" on a busy machine.
JOB_ENV = {"PYTHONWARNINGS": _QUIET_WARNINGS, "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60"}
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a Ray started here keeps 127.0.0.1 and binds to it only


def ray_dir() -> Path:
    """Where Ray and Tune keep their files: `$RAY_TMPDIR`, else `./.ray` (never `~`)."""
    return Path(os.environ.get("RAY_TMPDIR") or Path.cwd() / ".ray").resolve()


def local_ray_auth() -> Path | None:
    """Token auth for a Ray this process will start: unless the environment already names a token
    (`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`) or a mode, write a random token to `<ray dir>/auth_token` (0600,
    reused if present and private) and export `RAY_AUTH_MODE=token`, `RAY_AUTH_TOKEN_PATH`. Returns the file, or
    None when the environment decides. Also keeps a local Ray on loopback (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`,
    unless set). Call it before `import ray`."""
    os.environ.setdefault(LOOPBACK_ONLY, "0")
    if any(k in os.environ for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        return None
    path = ray_dir() / "auth_token"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and (path.stat().st_mode & 0o077 or not path.read_text().strip()):
        path.unlink()  # readable by others, or empty: not a secret any more
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    return path


def _quiet_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C ends the study at once (runs → KILLED)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no JSON/CSV/TensorBoard files per trial


def init_local_ray(num_cpus: int | None = None) -> None:
    """Start a single-node Ray on 127.0.0.1 in this process. Its workers import the training stack when their first
    trial or refit arrives; the trial processes then serve every later cell (`harness.tuning.trial_service`).
    Outside plugins loaded from files travel to the workers in the job's runtime environment
    (`harness.plugins.ray_runtime_env`)."""
    import ray

    from harness.plugins import ray_runtime_env

    _quiet_env()
    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=num_cpus,
        _temp_dir=str(ray_dir()),
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env=ray_runtime_env(JOB_ENV),
    )
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    for folder in (session, *([ray_dir()] if "RAY_TMPDIR" not in os.environ else [])):
        folder.chmod(0o700)  # Ray makes them 0777; only this user's processes use them


def require_tracking_server(tracking_uri: str, ray_address: str) -> None:
    """Refuse a file-based MLflow store when trials may run on other machines."""
    if "://" not in tracking_uri or tracking_uri.startswith(("sqlite:", "file:")):
        raise ConfigError(
            f"--ray-address {ray_address!r} needs an MLflow tracking server, but MLFLOW_TRACKING_URI is "
            f"{tracking_uri!r}, which trials on other nodes cannot reach. Start one with\n"
            "  mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000\n"
            "and export MLFLOW_TRACKING_URI=http://127.0.0.1:5000"
        )


def worker_places(cpus: float, gpus: float) -> int:
    """How many workers (trials, refits or Ray Train workers) of `cpus` CPUs and `gpus` GPUs the alive nodes of the
    connected Ray hold at once, summed over the nodes."""
    import ray

    total = 0
    for node in (n for n in ray.nodes() if n.get("Alive")):
        have = node["Resources"]
        by_cpu = math.floor(have.get("CPU", 0) / cpus + 1e-9)
        by_gpu = math.floor(have.get("GPU", 0) / gpus + 1e-9) if gpus else by_cpu
        total += min(by_cpu, by_gpu)
    return total


def require_resources(cpus: float, gpus: float, workers: int = 1) -> None:
    """ConfigError, before anything is scheduled, unless the connected Ray can hold one trial: `workers` workers
    of `cpus` CPUs and `gpus` GPUs each (one of them on a node; Ray would otherwise wait for room forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    have = "; ".join(f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU, "
                     f"{n['Resources'].get('GPU', 0):g} GPU" for n in nodes) or "none"  # fmt: skip
    places = worker_places(cpus, gpus)
    if not places:
        raise ConfigError(f"cpus_per_trial={cpus:g}, gpus_per_trial={gpus:g}: no node of the Ray cluster has that "
                          f"much (nodes: {have}); lower them or add a node that has it")  # fmt: skip
    if places < workers:
        raise ConfigError(f"workers_per_trial={workers} × (cpus_per_trial={cpus:g}, gpus_per_trial={gpus:g}): the "
                          f"Ray cluster holds {places} such worker{'s' if places > 1 else ''} at once (nodes: {have});"
                          " lower workers_per_trial or cpus_per_trial, or add nodes")  # fmt: skip


def _loopback(address: str) -> bool:
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
    return address.split(":")[0] in ("127.0.0.1", "localhost")


@contextmanager
def _own_sigterm_handler() -> Iterator[None]:
    """Keep this process's SIGTERM and SIGINT handlers across `ray.init`, which replaces SIGTERM's with `sys.exit`
    (the CLI's handler ends a command as Ctrl-C does, closing its runs KILLED; Ray's exit aborted the driver)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


@contextmanager
def ray_connection(address: str | None, num_cpus: int) -> Iterator[None]:
    """Ray for the duration of a study: attach to `address`, reuse an instance already initialised in this
    process, or start a local one (`num_cpus`); disconnects / shuts down only what it started."""
    import ray

    from harness.plugins import ray_runtime_env

    _quiet_env()
    if ray.is_initialized():
        yield
        return
    with _own_sigterm_handler():
        if address:
            local = _loopback(address) and not address.startswith("ray://")
            extra = {"_node_ip_address": "127.0.0.1"} if local else {}
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env=ray_runtime_env(JOB_ENV), **extra)  # fmt: skip
        else:
            init_local_ray(num_cpus)
    try:
        yield
    finally:
        ray.shutdown()
