"""`regbench transfer`: train on one cell line's EPI task and score other cells, or (with `--task`) train on some cell
types' labels of a chromatin task and score other cell types' labels of one assay; prints `run_id: <id>` last."""

from __future__ import annotations

import argparse

from harness.config import parse_overrides
from harness.limits import ascii_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transfer",
        help="cross-cell transfer matrix (EPI cell lines, or chromatin cell types with --task)",
        description="Train MODEL on epi.<CELL> for each training cell and score the test split of epi.<CELL> for each "
        "test cell; log the train × test AUPRC (primary) and AUROC matrices as CSV and heatmap PNG to one MLflow run "
        "(tag regbench.kind=transfer). CELL@KEY=VALUE gives one cell its own data option. With --task chromatin.X "
        "--assay A: train one model on the training cell types' labels of the task, then score each test cell "
        "type's A label on the test split with the trained A output of each training cell type (AUROC primary, "
        "AUPRC, with bootstrap CIs).",
        epilog="examples:\n"
        "  regbench transfer --model speid --train-cell gm12878 --test-cells gm12878,k562,huvec "
        "--set data.genome=hg19.fa\n"
        "  regbench transfer --model epsat --train-cell synthetic --test-cells synthetic,synthetic@seed=1 "
        "--max-epochs 3\n"
        "  regbench transfer --task chromatin.synthetic --assay DNase --model basenji --train-cells K562 "
        "--test-cells K562,HeLa-S3,HepG2",
    )
    p.add_argument("--model", required=True, help="model name (see `regbench models`)")
    p.add_argument("--train-cell", "--train-cells", dest="train_cell", required=True, metavar="CELL[,CELL...]",
                   help="training cell(s): EPI: each trains one model on epi.<CELL>; chromatin: one model trains "
                   "on all their labels (one matrix row each)")  # fmt: skip
    p.add_argument("--test-cells", required=True, metavar="CELL,CELL,...",
                   help="test cells: the test split of epi.<CELL> is scored, or of the chromatin task against "
                   "each cell type's --assay label (one matrix column each)")  # fmt: skip
    p.add_argument("--task", help="a multi-label chromatin task (chromatin.deepsea, chromatin.basset, "
                   "chromatin.synthetic): transfer between its cell types instead of EPI cell lines")  # fmt: skip
    p.add_argument("--assay", help="with --task: the assay scored across cell types, e.g. DNase or CTCF")
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
    from harness.config import ConfigError

    if args.task or args.assay:
        if not (args.task and args.assay):
            raise ConfigError("regbench transfer: --task and --assay go together (e.g. --task chromatin.synthetic "
                              "--assay DNase)")  # fmt: skip
        return run_chromatin(args)
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


def run_chromatin(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.benchmark.chromatin_transfer import METRICS, parse_cell_list, run_chromatin_transfer

    result, run_id = run_chromatin_transfer(
        args.model,
        args.task,
        args.assay,
        parse_cell_list(args.train_cell, "--train-cells"),
        parse_cell_list(args.test_cells, "--test-cells"),
        parse_overrides(args.overrides),
        args.seed,
        args.max_epochs,
        args.experiment,
    )
    with pd.option_context("display.width", 200, "display.max_columns", None):
        for name in METRICS:
            point, low, high = (result.matrices[k] for k in (name, f"{name}_low", f"{name}_high"))
            cells = pd.DataFrame({c: [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in zip(point[c], low[c], high[c],
                                  strict=True)] for c in point.columns}, index=point.index)  # fmt: skip
            print(f"\ntest {name} [95% CI] of {args.assay} (rows: training cell type's output, columns: test cell "
                  "type's label)")  # fmt: skip
            print(cells.to_string())
    print(f"run_id: {run_id}")
    return 0
