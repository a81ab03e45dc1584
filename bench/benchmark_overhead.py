"""What a benchmark cell costs besides training, per phase, read back from the MLflow runs it leaves.

Runs one tiny cell (`kmer_attention` tiny on `enhancers.synthetic`, 2 trials × 1 epoch, concurrency 2, one refit)
as a one-cell benchmark twice in one Ray instance — cold (Ray's workers start and import) and warm (a second cell:
the refit's worker may be reused; Ray starts every trial actor in a fresh process) — and prints, for both, the
phases from the run timestamps: Ray start, cell dispatch (submit →
the cell run opens), search setup (cell run open → first trial run open: resolve, data, Optuna, Tune, trial
actors), trials (their runs, and the part spent training: data load + fit), refits (idem), the cell's closing (last
refit → cell end: summary, tables, figures) and the leaderboard; `fixed cost` = cell wall time − seconds spent
loading data and training. With `--smoke`, it also runs `studies/smoke.yaml` cell after cell (`cells_in_flight=1`)
and with the scheduler's default, in one run, and prints the wall time per runnable cell of each and their ratio.

    RAY_TMPDIR=/tmp/ray-bench REGBENCH_DATA=../shared/data .venv/bin/python bench/benchmark_overhead.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

STUDY = """\
name: {name}
tasks: [enhancers.synthetic]
models: [kmer_attention]
seeds: [0]
trials: 2
max_epochs: 1
concurrency: 2
tiny: true
shortcuts: false
task_set:
  enhancers.synthetic: {{data.n: 300}}
"""


def _phases(experiment: str, bench_start: float) -> dict[str, float]:
    """Per-phase seconds of the one cell of `experiment`, from its runs' start/end times and logged metrics."""
    from harness.tracking import store

    runs = store.search_runs(experiment)
    kind = runs["tags.regbench.kind"]
    cell, bench = runs[kind == "cell"].iloc[0], runs[kind == "benchmark"].iloc[0]
    trials, refits = runs[kind == "trial"], runs[kind == "refit"]

    def s(t: object) -> float:
        return t.timestamp()  # type: ignore[attr-defined]

    def busy(frame: object, column: str) -> float:
        return float(frame[column].fillna(0).sum()) if column in frame else 0.0  # type: ignore[index,operator]

    trial_train = busy(trials, "metrics.wall_time_s")  # the trial's ResourceMonitor: data load + fit
    refit_train = busy(refits, "metrics.train_time_s") + busy(refits, "metrics.data_load_time_s")
    cell_wall = s(cell["end_time"]) - s(cell["start_time"])
    return {
        "dispatch (submit → cell run)": s(cell["start_time"]) - bench_start,
        "search setup (cell → 1st trial)": s(trials["start_time"].min()) - s(cell["start_time"]),
        "trials (first start → last end)": s(trials["end_time"].max()) - s(trials["start_time"].min()),
        "  trials' data + training": trial_train,
        "refit gap (last trial → refit)": s(refits["start_time"].min()) - s(trials["end_time"].max()),
        "refits (start → end)": s(refits["end_time"].max()) - s(refits["start_time"].min()),
        "  refits' data + training": refit_train,
        "cell closing (refit → cell end)": s(cell["end_time"]) - s(refits["end_time"].max()),
        "leaderboard (cell end → bench end)": s(bench["end_time"]) - s(cell["end_time"]),
        "cell wall": cell_wall,
        "fixed cost (cell wall − data − training)": cell_wall - trial_train - refit_train,
    }


def _tiny_cells(workdir: Path) -> None:
    """The tiny cell, cold and then warm, in one local Ray."""
    import ray

    from harness.benchmark.cross import run_benchmark
    from harness.tuning.ray_connection import init_local_ray

    start = time.perf_counter()
    init_local_ray(num_cpus=os.cpu_count() or 1)
    table: dict[str, list[float]] = {"Ray start": [time.perf_counter() - start, 0.0]}
    for name in ("cold", "warm"):
        path = workdir / f"{name}.yaml"
        path.write_text(STUDY.format(name=name))
        bench_start = time.time()
        run_benchmark(path, progress=False)
        for phase, seconds in _phases(name, bench_start).items():
            table.setdefault(phase, []).append(seconds)
    ray.shutdown()
    print(f"\n{'phase (seconds)':<44}" + "".join(f"{h:>11}" for h in ("cold", "warm")))
    for phase, values in table.items():
        print(f"{phase:<44}" + "".join(f"{v:>11.1f}" for v in values))


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
        _tiny_cells(workdir)
        if args.smoke:
            _smoke(workdir, repo)
    print(f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
