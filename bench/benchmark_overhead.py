"""What a benchmark cell costs besides training, per phase, read back from the MLflow runs it leaves.

Runs one benchmark of three tiny cells (`kmer_attention`, `basset`, `deepsea` tiny on `enhancers.synthetic`, 2
trials × 1 epoch each, concurrency 2, one refit) cell after cell (`cells_in_flight=1`, so no phase of one cell
overlaps another's), and prints, per cell in the order they ran (the first one cold: the benchmark's trial
processes start and import; the later ones warm: Tune hands them the processes the first cell left), the phases
from the run timestamps: cell dispatch (the previous cell's end, or the benchmark's start → the cell run opens),
search setup (cell run open → first trial run open: resolve, data, Optuna, Tune, trial actors), trials (their runs,
and the part spent training: data load + fit), refit gap, refits (idem), the cell's closing (last refit → cell end:
summary, tables, figures) and, once, the leaderboard; `fixed cost` = cell wall time − seconds spent loading data
and training. With `--smoke`, it also runs `studies/smoke.yaml` cell after cell (`cells_in_flight=1`) and with
the scheduler's default, in one run, and prints the wall time per runnable cell of each and their ratio.

    RAY_TMPDIR=/tmp/ray-bench REGBENCH_DATA=../shared/data .venv/bin/python bench/benchmark_overhead.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

STUDY = """\
name: tiny
tasks: [enhancers.synthetic]
models: [kmer_attention, basset, deepsea]
seeds: [0]
trials: 2
max_epochs: 1
concurrency: {concurrency}
tiny: true
shortcuts: false
task_set:
  enhancers.synthetic: {{data.n: 300}}
"""


def _seconds(t: object) -> float:
    return t.timestamp()  # type: ignore[attr-defined]


def _busy(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].fillna(0).sum()) if column in frame else 0.0


def _phases(runs: pd.DataFrame, cell: pd.Series, since: float) -> dict[str, float]:
    """Per-phase seconds of one cell run (its trial and refit runs are its children); `since` = when its dispatch
    began."""
    children = runs[runs["tags.mlflow.parentRunId"] == cell["run_id"]]
    kind = children["tags.regbench.kind"]
    trials, refits = children[kind == "trial"], children[kind == "refit"]
    trial_train = _busy(trials, "metrics.wall_time_s")  # the trial's ResourceMonitor: data load + fit
    refit_train = _busy(refits, "metrics.train_time_s") + _busy(refits, "metrics.data_load_time_s")
    start, end = _seconds(cell["start_time"]), _seconds(cell["end_time"])
    first_trial, last_trial = _seconds(trials["start_time"].min()), _seconds(trials["end_time"].max())
    first_refit, last_refit = _seconds(refits["start_time"].min()), _seconds(refits["end_time"].max())
    return {
        "dispatch (previous end → cell run)": start - since,
        "search setup (cell → 1st trial)": first_trial - start,
        "trials (first start → last end)": last_trial - first_trial,
        "  trials' data + training": trial_train,
        "refit gap (last trial → refit)": first_refit - last_trial,
        "refits (start → end)": last_refit - first_refit,
        "  refits' data + training": refit_train,
        "cell closing (refit → cell end)": end - last_refit,
        "cell wall": end - start,
        "fixed cost (cell wall − data − training)": end - start - trial_train - refit_train,
    }


def _tiny_cells(workdir: Path, concurrency: int) -> None:
    """The three tiny cells, one after another, in one benchmark."""
    from harness.benchmark.cross import run_benchmark
    from harness.tracking import store

    path = workdir / "tiny.yaml"
    path.write_text(STUDY.format(concurrency=concurrency))
    bench_start = time.time()
    run_benchmark(path, progress=False, cells_in_flight=1)
    runs = store.search_runs("tiny")
    kind = runs["tags.regbench.kind"]
    cells = runs[kind == "cell"].sort_values("start_time")
    bench = runs[kind == "benchmark"].iloc[0]
    table: dict[str, list[float]] = {}
    since = bench_start
    for _, cell in cells.iterrows():
        for phase, seconds in _phases(runs, cell, since).items():
            table.setdefault(phase, []).append(seconds)
        since = _seconds(cell["end_time"])
    names = [str(m) for m in cells["tags.model"]]
    print(f"\n{'phase (seconds)':<44}" + "".join(f"{n:>15}" for n in names))
    for phase, values in table.items():
        print(f"{phase:<44}" + "".join(f"{v:>15.1f}" for v in values))
    print(f"{'leaderboard (last cell end → bench end)':<44}{_seconds(bench['end_time']) - since:>15.1f}")
    warm = table["fixed cost (cell wall − data − training)"][1:]
    print(f"fixed cost per warm cell (mean of {len(warm)}): {sum(warm) / len(warm):.1f} s")


def _smoke(workdir: Path, repo: Path) -> None:
    from harness.benchmark.cross import run_benchmark

    walls = {}
    for label, in_flight in (("cell after cell", 1), ("scheduler", None)):
        text = (repo / "studies" / "smoke.yaml").read_text().replace("name: smoke", f"name: smoke-{in_flight or 0}")
        path = workdir / f"smoke-{in_flight or 0}.yaml"
        path.write_text(text.replace(".regbench/lm/", f"{repo}/.regbench/lm/"))
        result = run_benchmark(path, progress=False, cells_in_flight=in_flight)
        runnable = sum(c.status in ("finished", "failed") for c in result.cells)
        walls[label] = result.wall_time_s / max(runnable, 1)
        print(f"smoke, {label}: {result.wall_time_s:.0f} s for {runnable} runnable cells = {walls[label]:.1f} s/cell, "
              f"slot utilization {result.slot_utilization:.0%}")  # fmt: skip
    ratio = walls["cell after cell"] / walls["scheduler"]
    print(f"smoke wall time per cell, cell after cell / scheduler: {ratio:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="also time studies/smoke.yaml, both schedules")
    parser.add_argument("--concurrency", type=int, default=2, help="trials of a tiny cell at once (default 2)")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    with tempfile.TemporaryDirectory(prefix="overhead") as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
        os.environ.setdefault("RAY_TMPDIR", str(workdir / "ray"))
        from harness.tuning.ray_connection import local_ray_auth

        local_ray_auth()
        _tiny_cells(workdir, args.concurrency)
        if args.smoke:
            _smoke(workdir, repo)
    print(f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
