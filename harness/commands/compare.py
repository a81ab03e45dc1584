"""`regbench compare RUN_A RUN_B`: paired tests of two runs scored on the same test data."""

from __future__ import annotations

import argparse

from harness.limits import ascii_int

METRICS = ("auroc", "auprc", "accuracy")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="paired tests of two runs on the same test data (DeLong, paired bootstrap, McNemar)",
        description="Compare two scored runs ($MLFLOW_TRACKING_URI) on their logged test predictions: AUROC by "
        "DeLong's test and the paired bootstrap, AUPRC by the paired bootstrap, accuracy at each run's "
        "validation-chosen threshold by McNemar's test; Holm-adjusted p-values. Runs on different data (dataset "
        "digest or test example ids) are refused.",
        epilog="examples:\n  regbench compare RUN_A RUN_B\n  regbench compare RUN_A RUN_B --metric auroc --n-boot 2000",
    )
    p.add_argument("run_a", metavar="RUN_A", help="run id")
    p.add_argument("run_b", metavar="RUN_B", help="run id")
    p.add_argument("--metric", choices=METRICS, default=None, help="show only this metric's tests")
    p.add_argument("--n-boot", type=ascii_int, default=10_000, help="paired-bootstrap resamples (default 10000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.benchmark.comparisons import compare_runs
    from harness.benchmark.leaderboard import to_markdown

    table = compare_runs(args.run_a, args.run_b, n_boot=args.n_boot)
    if args.metric:
        table = table[table["metric"] == args.metric]
    shown = table[["model_a", "model_b", "metric", "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "test",
                   "n_examples"]]  # fmt: skip
    print(to_markdown(shown), end="")
    return 0
