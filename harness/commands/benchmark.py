"""`regbench benchmark`: run a study file's tasks × models cross; prints the leaderboard and `run_id: <id>` last."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from harness.limits import ascii_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="run every task × model × seed cell of a study file and print the leaderboard",
        description="Validate STUDY (a YAML cross of tasks × models × seeds, see studies/), then tune every cell "
        "with Ray Tune + Optuna under one MLflow benchmark run (experiment = the study's name) and log the "
        "leaderboard. With `splits: [chromosome, random]` every cell runs once per data.split and the "
        "leaderboard shows the scores side by side. Cells already finished with the same settings are reused; a "
        "cell that fails is recorded with its reason and the benchmark goes on; it then exits 1.",
        epilog="examples:\n  regbench benchmark --study studies/smoke.yaml\n"
        "  regbench benchmark --study studies/epi_splits.yaml   # chromosome vs random split, offline\n"
        "  regbench benchmark --study studies/enhancers.yaml --ray-address auto   # needs an MLflow server",
    )
    p.add_argument("--study", required=True, type=Path, help="study YAML file, e.g. studies/smoke.yaml")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to attach (auto, host:port, ray://host:port); default: a local Ray")  # fmt: skip
    p.add_argument("--storage", default=None,
                   help="Optuna storage of the cells' searches (default: optuna.db beside a SQLite store)")  # fmt: skip
    p.add_argument("--cells-in-flight", type=ascii_int, default=None, metavar="N",
                   help="cells submitted at once (default: trial slots + 1; 1 = cell after cell)")  # fmt: skip
    p.add_argument("--no-resume", dest="resume", action="store_false", help="recompute cells that already finished")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="where to write report.md/report.html at the end (default: reports/<study name>)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.benchmark.cross import run_benchmark
    from harness.paths import input_file, output_dir
    from harness.reporting.write import write_report
    from harness.tracking import store

    input_file(args.study, "study file")
    if args.report_dir is not None:
        output_dir(args.report_dir, "report folder")

    result = run_benchmark(args.study, args.ray_address, args.storage, resume=args.resume, progress=args.progress,
                           cells_in_flight=args.cells_in_flight)  # fmt: skip
    failed = sum(c.status == "failed" for c in result.cells)
    reused = sum(c.status == "reused" for c in result.cells)
    print(f"\n{result.markdown}")
    used = result.slot_utilization
    busy = f", slot utilization {used:.0%}" if math.isfinite(used) else ""
    print(f"{len(result.cells)} cells ({reused} reused, {failed} failed) in {result.wall_time_s:.1f} s{busy}; "
          f"experiment {result.experiment!r}")  # fmt: skip
    report = write_report(result.experiment, args.report_dir or Path("reports") / result.experiment)
    print(f"report: {report / 'report.html'} (also logged to the benchmark run under report/)")
    print(f"MLflow UI: {store.ui_hint(store.ensure_experiment(result.experiment))}")
    print(f"run_id: {result.run_id}")
    return 1 if failed else 0  # finished cells are kept either way; a failed cell is re-run by the next invocation
