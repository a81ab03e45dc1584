"""`mlflow run . -e benchmark` re-run, and then a plain `regbench benchmark` of the same study file, keep one
benchmark run and reuse its cells: the first launch's run becomes the benchmark run, a later launch's run is
nested under it, and nothing is left RUNNING."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.tracking import store
from tests.test_mlflow_ui import UNABLE_STUDY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's files (what git tracks or would track) holding the study file `ui.yaml`, since
    `mlflow run` runs an entry point in the project folder and the benchmark writes `optuna.db` and `reports/`
    there; the venv first on PATH (the entry points call `python`)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    copy = workdir / "project"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    (copy / "ui.yaml").write_text(UNABLE_STUDY)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(copy)
    return copy


def launch(argv: list[str]) -> str:
    """Run a command in the project copy; its stdout (stderr too in the failure message)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_benchmark_relaunched_by_mlflow_run_keeps_one_run_and_its_cells(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlflow_run = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "-e", "benchmark", "--env-manager",
                  "local", "--experiment-name", "ui", "-P", "study=ui.yaml"]  # fmt: skip
    first = launch(mlflow_run)
    runs = store.search_runs("ui")
    bench = runs[runs["tags.regbench.kind"] == "benchmark"]
    assert (
        len(bench) == 1 and "2 cells (1 ran, 0 reused, 0 failed, 1 unable)" in first
    )  # kmer_logreg ran, targetfinder_gbm unable
    bench_id = bench["run_id"].iloc[0]
    assert bench["tags.mlflow.project.entryPoint"].iloc[0] == "benchmark"  # the launched run became the benchmark
    experiment = bench["experiment_id"].iloc[0]
    assert f"then open {store.UI_ADDRESS}/{store.leaderboard_link(experiment)}" in first
    cells = set(runs.loc[runs["tags.regbench.kind"] == "cell", "run_id"])
    assert len(cells) == 2

    second = launch(mlflow_run)
    assert main(["benchmark", "--study", "ui.yaml", "--no-progress"]) == 0  # in-process: no Ray, all reused
    third = capsys.readouterr().out
    for out in (second, third):
        assert "2 cells (0 ran, 1 reused, 0 failed, 1 unable)" in out and out.strip().endswith(f"run_id: {bench_id}")
    runs = store.search_runs("ui")
    assert not (runs["status"] == "RUNNING").any()
    bench = runs[runs["tags.regbench.kind"] == "benchmark"]
    assert bench[["run_id", "status"]].values.tolist() == [[bench_id, "FINISHED"]]
    assert set(runs.loc[runs["tags.regbench.kind"] == "cell", "run_id"]) == cells
    assert store.client().get_run(bench_id).data.metrics["n_reused"] == 1
    relaunch = runs[(runs["tags.mlflow.project.entryPoint"] == "benchmark") & (runs["run_id"] != bench_id)]
    assert len(relaunch) == 1 and relaunch["status"].iloc[0] == "FINISHED"
    assert relaunch["tags.mlflow.parentRunId"].iloc[0] == bench_id  # the second launch's own run, nested
    assert bench_id in relaunch[f"tags.{store.NOTE_TAG}"].iloc[0]
