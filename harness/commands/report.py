"""`regbench report`: write report.md and a self-contained report.html for an experiment."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="leaderboards and figures of an experiment as report.md + report.html",
        description="Read the runs of an MLflow experiment ($MLFLOW_TRACKING_URI, default sqlite:///mlflow.db) and "
        "write report.md, a self-contained report.html (figures embedded) and figures/*.png. The report is also "
        "logged under report/ of the experiment's benchmark run, if it has one.",
        epilog="examples:\n  regbench report --experiment smoke\n"
        "  regbench report --experiment smoke --out reports/smoke --no-log",
    )
    p.add_argument("--experiment", required=True, help="MLflow experiment name (a study's name)")
    p.add_argument("--out", default=None, help="output folder (default reports/EXPERIMENT)")
    p.add_argument("--no-log", action="store_true", help="do not log the report to the benchmark run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.limits import check_name
    from harness.paths import output_dir
    from harness.reporting.write import default_out, write_report

    check_name(args.experiment, "--experiment")
    folder = output_dir(args.out or default_out(args.experiment), "output folder")
    out = write_report(args.experiment, folder, log_to_benchmark=not args.no_log)
    print(f"wrote {out / 'report.md'} and {out / 'report.html'}")
    return 0
