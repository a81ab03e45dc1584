"""Distributed mode: a real 2-node Ray cluster (`ray start`) plus a real MLflow tracking server, both on loopback.

The cluster is started once for the module's tests. Everything started here is stopped by PID (processes whose
command line names the cluster's temp dir), never with `ray stop`, which would also stop other Ray instances on the
machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.tracking import store
from harness.tuning.ray_connection import LOOPBACK_ONLY
from tests.conftest import free_port, pids_naming, wait_http
from tests.outside_plugin import write_model

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY = {"model.k": 3, "model.d_model": 16, "model.head_dim": 16, "model.pos_encoding": "none", "data.n": 200}


def _procs() -> Iterator[tuple[int, Path]]:
    """(pid, /proc/<pid>) of every process but this one."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            yield int(entry.name), entry


def _alive(pids: list[int]) -> bool:
    """Whether a process of `pids` (a negative one: its process group) still runs; a zombie has ended."""
    for pid, entry in _procs():
        try:
            state, _, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if state != "Z" and (pid in pids or -int(pgrp) in pids):
            return True
    return False


def _stop(pids: list[int]) -> None:
    """SIGTERM, then SIGKILL what is left after 1 s; returns as soon as every process has ended (at most 5 s after
    the SIGKILL)."""
    for sig, wait_s in ((signal.SIGTERM, 1), (signal.SIGKILL, 5)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(-pid, sig) if pid < 0 else os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while _alive(pids) and time.monotonic() < deadline:
            time.sleep(0.1)


def _start(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")


@pytest.fixture(scope="module")
def _cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker node (1 CPU each) and an MLflow server, shared by this module's tests; yields the Ray
    address and the environment a driver needs (Ray's folder and token, the server's URI)."""
    tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    token = Path(tmp) / "auth_token"  # Ray 2.60 clusters use token auth; every node and the driver read this file
    token.write_text(secrets.token_hex(32))
    ray_env = {"RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN_PATH": str(token)}  # fmt: skip
    # conftest's local_ray_auth keeps local Rays single-machine; this one has 2 nodes. The nodes get a cache of their
    # own, not the first test's.
    env = {k: v for k, v in os.environ.items() if k != LOOPBACK_ONLY} | ray_env | {"REGBENCH_CACHE": f"{tmp}/cache"}
    port, mlflow_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db", "--artifacts-destination",
         f"{tmp}/artifacts", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    ray_start = [str(BIN / "ray"), "start", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        _start([*ray_start, "--head", f"--port={port}", f"--temp-dir={tmp}", "--include-dashboard=false"], env)
        _start([*ray_start, f"--address={address}"], env)
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", 60)
        yield address, {**ray_env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}"}
    finally:
        _stop([-server.pid])  # the server's process group (it forks workers)
        _stop(pids_naming(tmp))


@pytest.fixture
def cluster(_cluster: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> str:
    """The module's cluster, its environment applied to this test (after conftest's, which resets the store)."""
    address, env = _cluster
    monkeypatch.delenv(LOOPBACK_ONLY, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return address


def test_trials_spread_over_two_nodes_and_log_to_the_server(tmp_path: Path, cluster: str) -> None:
    """Trials of an outside model given as a file on the driver's disk run on both nodes and log to the server, with
    one refit per seed: Ray ships the file (the plugin itself refuses to build from any copy but the shipped one inside
    a Ray worker). Then a data-parallel trial puts one Ray Train worker on each node."""
    # The driver runs as the CLI in its own process: Ray reads its auth settings when it is first imported.
    plugin = write_model(tmp_path / "plug", "outside_cluster")
    cluster_args = ["--ray-address", cluster, "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]
    argv = [str(BIN / "regbench"), "study", "--plugins", str(plugin), "--task", "enhancers.synthetic", "--model",
            "outside_cluster", "--trials", "4", "--concurrency", "2", "--cpus-per-trial", "1", "--max-epochs", "1",
            "--seeds", "0,1", *cluster_args, "--set", "data.n=200"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    parent_run_id = done.stdout.strip().splitlines()[-1].removeprefix("parent_run_id: ")
    client = MlflowClient(store.tracking_uri())
    experiment = client.get_experiment_by_name("enhancers.synthetic__outside_cluster__s0")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get(store.PARENT_TAG) == parent_run_id]
    trials = [r for r in children if r.data.tags["regbench.kind"] == "trial"]
    refits = [r for r in children if r.data.tags["regbench.kind"] == "refit"]
    assert sorted(r.info.run_name for r in trials) == [f"outside_cluster · enh.synth · t{n}" for n in range(4)]
    assert len({r.data.tags["ray_node_id"] for r in trials}) == 2  # both nodes ran trials: both built the plugin
    assert sorted(r.data.tags["seed"] for r in refits) == ["0", "1"]
    # each refit a Tune trial of its own, placed by Ray on a node of the cluster (Tune gives the second one whichever
    # comes first: the first refit's warm process, or a new one on the other node)
    assert len({r.data.tags["ray_trial_id"] for r in refits}) == 2
    assert {r.data.tags["ray_node_id"] for r in refits} <= {r.data.tags["ray_node_id"] for r in trials}
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    assert all(r.data.tags["regbench.plugin_source"].startswith(f"{plugin} sha256:") for r in runs)
    assert "trials.csv" in {a.path for a in client.list_artifacts(parent_run_id)}

    # The same cluster: one trial and its refit data-parallel on 2 Ray Train workers of 1 CPU, one on each node,
    # rank 0 logging to the server.
    ddp = [str(BIN / "regbench"), "study", "--task", "enhancers.synthetic", "--model", "kmer_attention", "--trials",
           "1", "--max-epochs", "1", "--workers-per-trial", "2", "--study-name", "ddp", *cluster_args]  # fmt: skip
    ddp += [a for key, value in TINY.items() for a in ("--set", f"{key}={value}")]
    done = subprocess.run(ddp, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    work = {r.data.tags["regbench.kind"]: r for r in runs if r.data.tags["regbench.kind"] in ("trial", "refit")}
    assert sorted(work) == ["refit", "trial"] and {r.data.tags["workers"] for r in work.values()} == {"2"}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len(client.get_metric_history(work["trial"].info.run_id, "train_loss")) == 1  # rank 0 alone logged


def test_a_client_without_the_token_is_refused(tmp_path: Path, cluster: str) -> None:
    """The cluster runs with token auth: a driver without the token (none in its env, an empty HOME) cannot join."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    code = f"import ray; ray.init(address={cluster!r}, _node_ip_address='127.0.0.1'); print('JOINED')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "JOINED" not in done.stdout
    assert "Authentication" in done.stderr or "auth" in done.stderr.lower()
    with_token = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": os.environ["RAY_AUTH_TOKEN_PATH"]}
    done = subprocess.run([sys.executable, "-c", code], env=with_token, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "JOINED" in done.stdout, done.stderr[-2000:]


def test_local_ray_token_file_is_private(tmp_path: Path) -> None:
    """`local_ray_auth` writes the token under the project's Ray dir, mode 0600, and replaces a readable one."""
    code = (
        "import os, stat; from harness.tuning.ray_connection import local_ray_auth; p = local_ray_auth(); "
        "print(p, oct(stat.S_IMODE(p.stat().st_mode)), os.environ['RAY_AUTH_MODE'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"RAY_TMPDIR": str(tmp_path)}
    (tmp_path / "auth_token").write_text("readable")
    (tmp_path / "auth_token").chmod(0o644)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == [str(tmp_path / "auth_token"), "0o600", "token"], done.stderr[-2000:]
    assert (tmp_path / "auth_token").read_text() != "readable"
