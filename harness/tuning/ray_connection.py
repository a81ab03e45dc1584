"""Connecting a study to Ray: a local instance on 127.0.0.1 (default) or an existing cluster.

A local instance keeps its files under `$RAY_TMPDIR` (else `./.ray`), has no dashboard and no usage stats, and is
shut down afterwards. Attaching (`auto`, `host:port`, `ray://host:port`) needs an MLflow tracking server, since
trials on other nodes cannot write to the driver's SQLite file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.config import ConfigError

_QUIET_WARNINGS = "ignore:The pynvml package is deprecated:FutureWarning"


def ray_dir() -> Path:
    """Where Ray and Tune keep their files: `$RAY_TMPDIR`, else `./.ray` (never `~`)."""
    return Path(os.environ.get("RAY_TMPDIR") or Path.cwd() / ".ray").resolve()


def _quiet_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C ends the study at once (runs → KILLED)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def init_local_ray(num_cpus: int | None = None) -> None:
    """Start a single-node Ray on 127.0.0.1 in this process."""
    import ray

    _quiet_env()
    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=num_cpus,
        _temp_dir=str(ray_dir()),
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONWARNINGS": _QUIET_WARNINGS}},
    )


def require_tracking_server(tracking_uri: str, ray_address: str) -> None:
    """Refuse a file-based MLflow store when trials may run on other machines."""
    if "://" not in tracking_uri or tracking_uri.startswith(("sqlite:", "file:")):
        raise ConfigError(
            f"--ray-address {ray_address!r} needs an MLflow tracking server, but MLFLOW_TRACKING_URI is "
            f"{tracking_uri!r}, which trials on other nodes cannot reach. Start one with\n"
            "  mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000\n"
            "and export MLFLOW_TRACKING_URI=http://127.0.0.1:5000"
        )


def _loopback(address: str) -> bool:
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
    return address.split(":")[0] in ("127.0.0.1", "localhost")


@contextmanager
def ray_connection(address: str | None, num_cpus: int) -> Iterator[None]:
    """Ray for the duration of a study: attach to `address`, reuse an instance already initialised in this
    process, or start a local one (`num_cpus`); disconnects / shuts down only what it started."""
    import ray

    _quiet_env()
    if ray.is_initialized():
        yield
        return
    if address:
        extra = {"_node_ip_address": "127.0.0.1"} if _loopback(address) and not address.startswith("ray://") else {}
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **extra)
    else:
        init_local_ray(num_cpus)
    try:
        yield
    finally:
        ray.shutdown()
