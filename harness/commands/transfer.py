"""`regbench transfer`: train on one cell line's EPI task, score other cells; prints `run_id: <id>` as its last line."""

from __future__ import annotations

import argparse

from harness.config import parse_overrides
from harness.limits import ascii_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transfer",
        help="cross-cell transfer matrix for an EPI model (train on cell A, test on cells B, C, ...)",
        description="Train MODEL on epi.<CELL> for each training cell and score the test split of epi.<CELL> for each "
        "test cell; log the train × test AUPRC (primary) and AUROC matrices as CSV and heatmap PNG to one MLflow run "
        "(tag regbench.kind=transfer). CELL@KEY=VALUE gives one cell its own data option.",
        epilog="examples:\n"
        "  regbench transfer --model speid --train-cell gm12878 --test-cells gm12878,k562,huvec "
        "--set data.genome=hg19.fa\n"
        "  regbench transfer --model epsat --train-cell synthetic --test-cells synthetic,synthetic@seed=1 "
        "--max-epochs 3",
    )
    p.add_argument("--model", required=True, help="model name (see `regbench models`)")
    p.add_argument("--train-cell", required=True, metavar="CELL[,CELL...]",
                   help="training cell(s): each trains one model on epi.<CELL> (one matrix row each)")  # fmt: skip
    p.add_argument("--test-cells", required=True, metavar="CELL,CELL,...",
                   help="test cells: the test split of epi.<CELL> is scored (one matrix column each)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override model.*, train.* or data.* (data.* for every cell; repeatable)")  # fmt: skip
    p.add_argument("--seed", type=ascii_int, default=0, help="random seed (default 0)")
    p.add_argument("--max-epochs", type=ascii_int, default=None,
                   help="maximum training epochs (default: train.max_epochs)")  # fmt: skip
    p.add_argument("--experiment", default="regbench", help="MLflow experiment name (default: regbench)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.benchmark.cell_line_transfer import METRICS, SHARED, parse_cells, run_transfer

    result, run_id = run_transfer(
        args.model,
        parse_cells(args.train_cell),
        parse_cells(args.test_cells),
        parse_overrides(args.overrides),
        args.seed,
        args.max_epochs,
        args.experiment,
    )
    with pd.option_context("display.width", 200, "display.max_columns", None):
        for name in (*METRICS, SHARED):
            print(f"\ntest {name} (rows: training cell, columns: test cell)")
            print(result.matrices[name].to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"run_id: {run_id}")
    return 0
