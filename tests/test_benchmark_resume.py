"""A benchmark killed with SIGKILL mid-run (driver, Ray and workers at once) resumes without losing or redoing work:
finished cells are reused, finished trials and refits of the interrupted cells are not run again, nothing stays
RUNNING."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.tracking import store

pytestmark = pytest.mark.slow

STUDY = """\
name: killed
tasks: [enhancers.synthetic]
models: [kmer_logreg, kmer_attention]
seeds: [0, 1]
trials: 3
max_epochs: 2
concurrency: 1
tiny: true
shortcuts: false
task_set:
  enhancers.synthetic: {data.n: 300}
model_set:
  kmer_logreg: {model.k: 3}
"""


def _finished(kind: str) -> int:
    runs = store.search_runs("killed", f"tags.`regbench.kind` = '{kind}' AND attributes.status = 'FINISHED'")
    return len(runs)


def _kill_naming(tmp: str) -> None:
    for entry in Path("/proc").iterdir():  # Ray's own processes name its temp dir on their command line
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if tmp in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    os.kill(int(entry.name), signal.SIGKILL)


def test_sigkill_mid_benchmark_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray_tmp = tempfile.mkdtemp(prefix="rk", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "killed.yaml").write_text(STUDY)
    argv = [str(Path(sys.executable).parent / "regbench"), "benchmark", "--study", "killed.yaml", "--no-progress"]
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while _finished("cell") < 1 or _finished("trial") < 4:  # a cell done, the other mid-search or refitting
            assert driver.poll() is None, "the benchmark ended before it could be killed"
            assert time.monotonic() < deadline, "no cell finished in time"
            time.sleep(0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # the driver's session: it and the Ray it started
        _kill_naming(ray_tmp)
    driver.wait(timeout=60)
    before = {kind: _finished(kind) for kind in ("cell", "trial", "refit")}

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    finally:
        _kill_naming(ray_tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = store.search_runs("killed")
    assert not (runs["status"] == "RUNNING").any()
    cells = runs[(runs["tags.regbench.kind"] == "cell") & (runs["status"] == "FINISHED")]
    assert len(cells) == 2 >= before["cell"]
    trials = runs[(runs["tags.regbench.kind"] == "trial") & (runs["status"] == "FINISHED")]
    assert trials.groupby("tags.study_name").size().tolist() == [3, 3]  # no finished trial ran twice
    refits = runs[(runs["tags.regbench.kind"] == "refit") & (runs["status"] == "FINISHED")]
    assert refits.groupby(["tags.study_name", "tags.seed"]).size().eq(1).all() and len(refits) == 4
    assert set(refits["tags.mlflow.parentRunId"]) == set(cells["run_id"])  # reused refits moved under their cell
    assert len(trials) >= before["trial"] and len(refits) >= before["refit"]
