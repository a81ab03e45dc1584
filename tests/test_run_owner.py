"""Runs left RUNNING by a process that died (SIGKILL) are ended KILLED, with their nested runs, when the next
top-level run starts in the experiment; live runs and runs of other hosts are left alone. SIGTERM ends a command as
Ctrl-C does."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from harness.tracking import store
from harness.tracking.run_owner import PROCESS_TAG, process_gone, process_stamp

REPO = Path(__file__).resolve().parents[1]

CRASHING_STUDY = """
import os, signal
import pytest

from harness.tracking import store
with store.client_run("exp", "crashed-study") as parent:
    with store.run("exp", "trial-0", parent_run_id=parent.run_id) as child:
        print(parent.run_id, child.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_process_gone_tells_dead_reused_and_foreign_processes_apart() -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    assert not process_gone(process_stamp())
    assert process_gone(process_stamp().rsplit(":", 1)[0] + ":00000000-1")  # this pid, another process's start
    host = process_stamp().split(":")[0]
    assert process_gone(f"{host}:{dead_pid}:")
    assert not process_gone(f"another-host:{dead_pid}:")
    assert not process_gone("")
    assert not process_gone(f"{host}:not-a-pid:")


def test_runs_of_a_killed_process_end_killed_with_their_children() -> None:
    crashed = subprocess.run([sys.executable, "-c", CRASHING_STUDY], capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    parent_id, child_id = crashed.stdout.split()
    client = store.client()
    assert client.get_run(parent_id).info.status == "RUNNING"
    foreign = client.create_run(store.ensure_experiment("exp"), tags={PROCESS_TAG: "another-host:1:"})

    # starting a top-level run sweeps the experiment; the live study's run is still open meanwhile
    with store.client_run("exp", "live-study") as live, store.run("exp", "next-train-run") as nxt:
        assert client.get_run(live.run_id).info.status == "RUNNING"
        assert client.get_run(nxt.run_id).data.tags[PROCESS_TAG] == process_stamp()

    for run_id in (parent_id, child_id):
        run = client.get_run(run_id)
        assert run.info.status == "KILLED"
        assert run.data.tags["regbench.ended_by"].startswith("abandoned")
    assert client.get_run(live.run_id).info.status == "FINISHED"
    assert client.get_run(foreign.info.run_id).info.status == "RUNNING"


@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "nested"])
def test_an_interrupt_while_mlflow_starts_the_run_ends_it_killed(nested: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a SIGTERM that arrived after MLflow had created the run but before `store.run` held it (seen under
    load, once in a full suite) left the run RUNNING although the command reported "interrupted"."""
    real_start = mlflow.start_run

    def start_then_interrupted(*args: object, **kwargs: object) -> object:
        real_start(*args, **kwargs)
        raise KeyboardInterrupt("SIGTERM")

    with store.client_run("exp", "parent") as parent:  # a study's run: open, not MLflow's active run
        monkeypatch.setattr(mlflow, "start_run", start_then_interrupted)
        with pytest.raises(KeyboardInterrupt), store.run("exp", "child" if nested else "next",
                                                         parent_run_id=parent.run_id if nested else None):  # fmt: skip
            pytest.fail("the body must not run")
        monkeypatch.setattr(mlflow, "start_run", real_start)
        assert mlflow.active_run() is None  # popped, so MLflow's exit handler cannot end it FINISHED
    statuses = dict(zip(*store.search_runs("exp")[["tags.mlflow.runName", "status"]].to_dict("list").values(),
                        strict=True))  # fmt: skip
    assert statuses == {"parent": "FINISHED", ("child" if nested else "next"): "KILLED"}


def test_an_interrupt_inside_a_store_write_comes_after_it_and_leaves_the_store_writable() -> None:
    """Before: Ctrl-C or SIGTERM while the store committed a write left its SQLite transaction open, so each later
    write (ending the runs KILLED) waited out SQLite's 20-s busy timeout and failed: once in CI a benchmark took over
    60 s to stop. Now `regbench`'s handler delivers the interrupt once the write has returned."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from harness.cli import _interrupt

    client = store.client()
    run_id = client.create_run(store.ensure_experiment("exp")).info.run_id

    def interrupt_at_commit(connection: object) -> None:
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, _interrupt)
    event.listen(Engine, "commit", interrupt_at_commit, once=True)  # the first commit: log_metric's
    try:
        with pytest.raises(KeyboardInterrupt):
            client.log_metric(run_id, "loss", 1.0)
            time.sleep(5)  # where the interrupt lands
    finally:
        event.remove(Engine, "commit", interrupt_at_commit)
        signal.signal(signal.SIGINT, previous)
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [1.0]
    probe = sqlite3.connect(store.tracking_uri().removeprefix("sqlite:///"), timeout=0)
    probe.execute("BEGIN IMMEDIATE")  # "database is locked" while another connection holds a write transaction
    probe.rollback()


@pytest.mark.slow
def test_sigterm_ends_a_command_like_ctrl_c(tmp_path: Path) -> None:
    """`kill PID` on a training `regbench train`: exit 130, "interrupted", its run KILLED (not left RUNNING)."""
    argv = [sys.executable, "-m", "harness.cli", "train", "--task", "enhancers.synthetic", "--model", "kmer_attention",
            "--max-epochs", "1000", "--sets", "data.n=300 model.k=3 model.d_model=16 model.head_dim=16"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        runs = store.search_runs("regbench")
        if len(runs) and (runs["status"] == "RUNNING").any():
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "regbench train: interrupted" in err, err[-2000:]
    assert store.search_runs("regbench")["status"].tolist() == ["KILLED"]
