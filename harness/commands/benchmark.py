"""`regbench benchmark`: run a study file's tasks × models cross; prints the winner of each task, where the
leaderboard, the report and the MLflow UI are, and `run_id: <id>` last."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from harness.limits import WORKERS_PER_TRIAL, ascii_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="run every task × model × seed cell of a study file and print the winner of each task",
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
    p.add_argument("--workers-per-trial", type=ascii_int, default=None, metavar="N",
                   help="Ray Train workers per trial and refit of a torch model (default: the study file's "
                   f"workers_per_trial, else {WORKERS_PER_TRIAL})")  # fmt: skip
    p.add_argument("--no-resume", dest="resume", action="store_false", help="recompute cells that already finished")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="where to write report.md/report.html at the end (default: reports/<study name>)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.benchmark.cross import run_benchmark
    from harness.benchmark.winners import summary_lines
    from harness.paths import input_file, output_dir
    from harness.reporting.write import write_report
    from harness.tracking import store

    input_file(args.study, "study file")
    if args.report_dir is not None:
        output_dir(args.report_dir, "report folder")

    result = run_benchmark(args.study, args.ray_address, args.storage, resume=args.resume, progress=args.progress,
                           cells_in_flight=args.cells_in_flight, workers_per_trial=args.workers_per_trial)  # fmt: skip
    report = write_report(result.experiment, args.report_dir or Path("reports") / result.experiment)
    board = report / "leaderboard.md"
    board.write_text(f"# {result.experiment}\n\n{result.markdown}")
    counts = {s: sum(c.status == s for c in result.cells) for s in ("finished", "reused", "failed", "unable")}
    used = result.slot_utilization
    busy = f", slot utilization {used:.0%}" if math.isfinite(used) else ""
    print(f"\n{result.experiment}: {len(result.cells)} cells ({counts['finished']} ran, {counts['reused']} reused, "
          f"{counts['failed']} failed, {counts['unable']} unable) in {result.wall_time_s:.1f} s{busy}")  # fmt: skip
    print("winner per task (test score [95% CI]; tied: the paired tests cannot tell them apart):")
    print("\n".join(summary_lines(result.leaderboard)))
    print(f"leaderboard: {board}")
    print(f"report: {report / 'report.html'}")
    command = store.ui_command()
    address = store.ui_address(store.ensure_experiment(result.experiment))
    print(f"MLflow UI: {command}, then open {address}" if command else f"MLflow UI: {address}")
    print(f"run_id: {result.run_id}")
    return 1 if counts["failed"] else 0  # finished cells are kept; a failed cell is re-run by the next invocation
