"""`regbench slurm submit` on a real private Slurm: munged, slurmctld and slurmd on loopback with their own config,
ports and state folder (Debian's slurm-wlm: `proctrack/linuxproc`, `task/none`). A 2-cell study: a plain `scancel`
mid-run ends the job within KillWait with nothing RUNNING; resubmitting resumes (the finished cell is reused) and
finishes with a leaderboard. Installs nothing; every daemon it started is stopped by PID."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness.cli import main
from tests.conftest import free_port, pids_naming

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SBIN = f"/usr/sbin:/sbin:{os.environ.get('PATH', '')}"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scancel", "squeue", "scontrol", "sinfo", "srun")
KILL_WAIT = 30  # seconds between a plain scancel's SIGTERM and its SIGKILL
STUDY = """\
name: slurmtiny
tasks: [enhancers.synthetic]
models: [kmer_logreg, kmer_attention]
seeds: [0]
trials: 1
max_epochs: 3
shortcuts: false
task_set:
  enhancers.synthetic: {data.n: 300}
model_set:
  kmer_logreg: {model.k: 3, model.max_iter: 200}
  kmer_attention: {model.k: 3, model.d_model: 16, model.head_dim: 16}
"""
CONF = """\
ClusterName=rbtest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
{auth_info}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
FirstJobId={first_job}
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
KillWait={kill_wait}
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _require_slurm() -> None:
    """Skip with the reason where Slurm cannot run here; in CI (CI=true, where .ci/run installs it) fail instead."""
    missing = [b for b in (*DAEMONS, *CLIENTS) if shutil.which(b, path=SBIN) is None]
    reason = ""
    if missing:
        reason = f"Slurm/munge binaries missing: {', '.join(missing)} (apt-get install slurm-wlm munge)"
    elif os.geteuid() != 0:
        reason = "a private slurmd runs jobs only as root here"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _stop(pids: list[int]) -> None:
    """SIGTERM, then SIGKILL what is still alive after 10 s."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def _pid_from(pid_file: Path, log: Path) -> int:
    """The PID a daemon wrote (it does so after forking, a moment after its start command returned)."""
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, f"no {pid_file}: {log.read_text()[-2000:] if log.exists() else ''}"
        time.sleep(0.1)
    return int(pid_file.read_text())


def _munge_answers(socket_path: str | None) -> bool:
    args = ["munge", "-n"] + ([f"--socket={socket_path}"] if socket_path else [])
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        cred = subprocess.run(args, capture_output=True, timeout=10)
        if cred.returncode == 0:
            back = ["unmunge"] + ([f"--socket={socket_path}"] if socket_path else [])
            return subprocess.run(back, input=cred.stdout, capture_output=True, timeout=10).returncode == 0
    return False


class Slurm:
    """A private one-node cluster; `run` calls a Slurm client against it."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env

    def run(self, *args: str) -> str:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
        return done.stdout

    def jobs(self) -> list[str]:
        return self.run("squeue", "--noheader", "--format=%i %T").splitlines()


@pytest.fixture
def slurm() -> Iterator[Slurm]:
    _require_slurm()
    folder = Path(tempfile.mkdtemp(prefix="sl", dir="/tmp"))  # short: munge's socket path
    folder.chmod(0o755)  # munged wants its socket's folder searchable by all
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    started: list[int] = []
    auth_info = ""
    if not _munge_answers(None):  # no munged on the default socket: a private one with its own key and socket
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = folder / "munge.sock"
        subprocess.run([shutil.which("munged", path=SBIN), f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log",
                        f"--seed-file={folder}/munged.seed"], check=True, timeout=30)  # fmt: skip
        started.append(_pid_from(folder / "munged.pid", folder / "munged.log"))
        auth_info = f"AuthInfo=socket={sock}"
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(CONF.format(host=host, auth_info=auth_info, dir=folder, ctld_port=free_port(),
                                d_port=free_port(), first_job=random.randint(10_000, 9_000_000),
                                kill_wait=KILL_WAIT, cpus=os.cpu_count() or 2))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_"))}
    env |= {"SLURM_CONF": str(conf), "PATH": f"{BIN}:{SBIN}", "RAY_USAGE_STATS_ENABLED": "0"}
    cluster = Slurm(folder, env)
    try:
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([shutil.which(daemon, path=SBIN), "-f", str(conf)], env=env, check=True, timeout=60)
            started.append(_pid_from(folder / f"{daemon}.pid", folder / f"{daemon}.log"))
        deadline = time.monotonic() + 60
        while "idle" not in cluster.run("sinfo", "--noheader", "--format=%T"):
            assert time.monotonic() < deadline, (folder / "slurmctld.log").read_text()[-3000:]
            time.sleep(0.5)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            for job in cluster.jobs():
                subprocess.run(["scancel", job.split()[0]], env=env, timeout=30)
            deadline = time.monotonic() + KILL_WAIT + 15
            while cluster.jobs() and time.monotonic() < deadline:
                time.sleep(1)
        _stop(started[::-1])  # slurmd, slurmctld, then munged
        _stop(pids_naming(str(folder)))  # anything a job left behind that names this cluster
        shutil.rmtree(folder, ignore_errors=True)


def _submit(slurm: Slurm, work: Path, *extra: str) -> str:
    done = subprocess.run([str(BIN / "regbench"), "slurm", "submit", "tiny.yaml", "--partition", "debug", *extra],
                          cwd=work, env=slurm.env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].removeprefix("job_id: ")


def _wait_gone(slurm: Slurm, job: str, timeout_s: float, work: Path) -> float:
    start = time.monotonic()
    while any(line.split()[0] == job for line in slurm.jobs()):
        if time.monotonic() - start > timeout_s:
            out = (work / "slurm" / "tiny" / f"job-{job}.out").read_text()
            raise AssertionError(f"job {job} still there after {timeout_s:.0f} s:\n{out[-4000:]}")
        time.sleep(0.5)
    return time.monotonic() - start


def _runs(client: MlflowClient) -> pd.DataFrame:
    experiment = client.get_experiment_by_name("slurmtiny")
    if experiment is None:
        return pd.DataFrame(columns=["run_id", "status", "kind", "model"])
    rows = [{"run_id": r.info.run_id, "status": r.info.status, "kind": r.data.tags.get("regbench.kind"),
             "model": r.data.tags.get("model")} for r in client.search_runs([experiment.experiment_id])]  # fmt: skip
    return pd.DataFrame(rows, columns=["run_id", "status", "kind", "model"])


@pytest.mark.serial  # asserts a wall-clock limit (Slurm's KillWait)
def test_scancel_ends_runs_killed_and_a_resubmitted_job_resumes(slurm: Slurm, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "tiny.yaml").write_text(STUDY)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])  # the job's server serves this SQLite file

    job = _submit(slurm, work)
    deadline = time.monotonic() + 900  # limits for a loaded machine
    while True:  # the sklearn cell finished while the torch cell trains
        runs = _runs(client)
        cells = runs[runs["kind"] == "cell"].set_index("model")["status"].to_dict()
        if cells.get("kmer_logreg") == "FINISHED" and cells.get("kmer_attention") == "RUNNING":
            break
        assert cells.get("kmer_attention") != "FINISHED", "the torch cell finished before scancel: make it longer"
        assert time.monotonic() < deadline, (work / "slurm" / "tiny" / f"job-{job}.out").read_text()[-4000:]
        time.sleep(0.5)
    slurm.run("scancel", job)  # every process of the job gets SIGTERM at once, SIGKILL KillWait seconds later
    took = _wait_gone(slurm, job, KILL_WAIT + 20, work)
    out = (work / "slurm" / "tiny" / f"job-{job}.out").read_text()
    assert took < KILL_WAIT + 5, out[-4000:]  # ended within the grace Slurm gives (+ its own polling)
    runs = _runs(client)
    assert not (runs["status"] == "RUNNING").any(), f"{runs}\n{out[-4000:]}"
    cells = runs[runs["kind"] == "cell"].set_index("model")["status"].to_dict()
    assert cells == {"kmer_logreg": "FINISHED", "kmer_attention": "KILLED"}, out[-4000:]
    assert not pids_naming(str(work)), "a process of the cancelled job is still running"

    again = _submit(slurm, work)
    _wait_gone(slurm, again, 900, work)
    out = (work / "slurm" / "tiny" / f"job-{again}.out").read_text()
    assert "2 cells (1 ran, 1 reused, 0 failed, 0 unable)" in out, out[-4000:]
    runs = _runs(client)
    assert not (runs["status"] == "RUNNING").any(), runs
    finished = runs[(runs["kind"] == "cell") & (runs["status"] == "FINISHED")]
    assert sorted(finished["model"]) == ["kmer_attention", "kmer_logreg"]  # the logreg cell's one run, reused
    bench = runs[runs["kind"] == "benchmark"]
    assert len(bench) == 1 and bench["status"].iloc[0] == "FINISHED"  # the same study reopens its benchmark run
    # the server kept the artifacts in mlartifacts/ beside the store (`mlflow ui` there serves them)
    uri = client.get_run(bench["run_id"].iloc[0]).info.artifact_uri
    assert uri.startswith("mlflow-artifacts:/"), uri
    board = pd.read_csv(tmp_path / "mlartifacts" / uri.removeprefix("mlflow-artifacts:/") / "leaderboard.csv")
    assert sorted(board["model"]) == ["kmer_attention", "kmer_logreg"] and (board["status"] == "ok").all()
    assert sorted(board["rank"]) == [1, 2]
    assert "done" in out and not (work / "slurm" / "tiny" / again / "auth_token").exists()
    assert not Path(f"/tmp/rb{again}").exists()  # the head's Ray session folder is removed


def test_bad_input_is_one_line(
    slurm: Slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (`main`, as the `regbench` program calls it), against the cluster's Slurm and then none on PATH."""
    (tmp_path / "tiny.yaml").write_text(STUDY)
    monkeypatch.chdir(tmp_path)
    for key in ("SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm.env[key])
    assert main(["slurm", "submit", "tiny.yaml", "--partition", "nope"]) == 2
    err = "regbench slurm: error: --partition='nope' is not a partition of this cluster (sinfo: debug)\n"
    assert capsys.readouterr().err == err
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["slurm", "submit", "tiny.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("regbench slurm: error: sbatch is not on PATH") and len(err.splitlines()) == 1, err
    assert slurm.jobs() == []
