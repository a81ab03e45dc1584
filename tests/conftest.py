"""Shared fixtures: a temporary SQLite MLflow store, temp caches, the real-data root, a device; helpers for tests
that start servers on loopback (`free_port`, `wait_http`) and stop them by PID (`pids_naming`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.tuning.ray_connection import local_ray_auth

local_ray_auth()  # before any test imports ray, which reads its auth settings at import: local Rays use a token


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite MLflow store with MLflow's schema migrations applied, made once per session: a test's store
    starts as a copy of it (~1 s of migrations saved per test that logs; a test marked `fresh_store` gets none)."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("migrated_store")
    old = Path.cwd()
    os.chdir(folder)  # MLflow's Default experiment records its artifact folder under the working directory
    try:
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    finally:
        os.chdir(old)
    return folder / "mlflow.db"


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, _migrated_store: Path
) -> None:
    """Every test gets its own cache dir and MLflow store; nothing leaks into the repo or ~."""
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    if request.node.get_closest_marker("fresh_store") is None:
        shutil.copyfile(_migrated_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    torch.manual_seed(0)


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    """A folder for Ray's files under /tmp, short: Ray's socket paths must stay under 108 bytes; removed after."""
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray of 2 CPUs for a module's tests (start-up and shutdown take seconds): a study or benchmark run
    in this process reuses it (`ray_connection`); its trials get the tracking store and cache of the test that
    runs them. Short temp dir for its sockets."""
    import ray

    from harness.tuning.ray_connection import init_local_ray

    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as tmp:
        os.environ["RAY_TMPDIR"] = tmp
        init_local_ray(num_cpus=2)
        try:
            yield
        finally:
            ray.shutdown()
            os.environ.pop("RAY_TMPDIR", None)


@pytest.fixture
def workdir(tmp_path: Path, ray_tmp: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's folder as the working directory (Optuna's default storage and reports stay out of the repo), with
    Ray's files in `ray_tmp`."""
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tracking_uri() -> str:
    return os.environ["MLFLOW_TRACKING_URI"]


@pytest.fixture
def real_data() -> Path:
    """`$REGBENCH_DATA`; skipped with a reason when absent — except in CI, where it must exist."""
    value = os.environ.get("REGBENCH_DATA")
    if not value or not Path(value).is_dir():
        if os.environ.get("CI"):
            pytest.fail("REGBENCH_DATA must point at the real datasets in CI (e.g. ../shared/data)")
        pytest.skip("REGBENCH_DATA is not set: real-data test skipped (export REGBENCH_DATA=../shared/data)")
    return Path(value)


@pytest.fixture(
    params=[
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
    ]
)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def random_seqs(rng: np.random.Generator, n: int, length: int) -> list[str]:
    """Seeded random ACGT strings."""
    return ["".join(rng.choice(list("ACGT"), size=length)) for _ in range(n)]


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_naming(text: str) -> list[int]:
    """PIDs of the processes (but this one) whose command line contains `text`, e.g. a test's temp dir."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
    return pids


def wait_http(
    url: str, timeout_s: float, *, any_status: bool = False, server: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:  # fmt: skip
    """Return once `url` answers with success (or with any HTTP status, e.g. 401, when `any_status`); raise a
    TimeoutError, with the tail of the server's `log`, after `timeout_s` or as soon as `server` has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            if any_status:
                return
        except OSError:
            pass
        exited = server is not None and server.poll() is not None
        if exited or time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            why = "its server exited" if exited else f"no answer within {timeout_s} s"
            raise TimeoutError(f"{url}: {why}\n{tail}")
        time.sleep(0.5)
