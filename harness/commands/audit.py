"""`regbench audit --task T`: exact duplicate sequences (either strand) within and across splits, and near-duplicates
per split pair (canonical 8-mer Jaccard >= 0.5 by MinHash, `harness.data.near_duplicates`); under `data.split=cv`,
per fold."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from harness.config import parse_overrides
from harness.paths import DataNotFoundError

if TYPE_CHECKING:
    from harness.spec import Dataset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="report duplicate and near-duplicate sequences across a task's splits",
                       description="Report exact duplicate sequences (a sequence or its reverse complement) within "
                       "each split and shared between splits, and per split pair (train→test, train→val, val→test) "
                       "the fraction of the second split's sequences with a near-duplicate in the first (either "
                       "strand; Jaccard similarity of canonical 8-mer sets >= 0.5, by MinHash).",
                       epilog="examples:\n  regbench audit --task enhancers.ienhancer2l\n"
                       "  regbench audit --task epi.synthetic --set data.split=random")  # fmt: skip
    p.add_argument("--task", required=True, help="task name (see `regbench tasks`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                   help="task data option (repeatable)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.data.splits import CvTask
    from harness.plugins import make_task

    task = make_task(args.task, parse_overrides(args.overrides)["data"])
    audit_lines = task.audit_lines()  # e.g. EPI pair leakage, computed without loading sequences (no genome needed)
    for line in audit_lines:
        print(line)
    try:
        folds = [(f"fold {f.fold} of {task.folds}: ", f.splits()) for f in task.fold_tasks()] if isinstance(
            task, CvTask) else [("", task.splits())]  # fmt: skip
    except DataNotFoundError as err:
        if not audit_lines:
            raise
        print(f"sequence duplicates not checked: {err}")
        return 0
    for prefix, splits in folds:
        audit_splits(splits, f"{prefix}task {task.name} ({task.split_protocol})", task.io.n_branches)
    return 0


def audit_splits(splits: Mapping[str, Dataset], title: str, n_branches: int) -> None:
    """Print the exact and near-duplicate audit of one train/val/test split."""
    import numpy as np

    from harness.data import near_duplicates as nd
    from harness.data.datasets import FeatureDataset, SeqDataset, sequence_branches
    from harness.data.splits import duplicate_report

    print(f"{title}: " + ", ".join(f"{k}={len(v)}" for k, v in splits.items()))
    if any(isinstance(ds, FeatureDataset) for ds in splits.values()):
        print("sequence duplicates not checked: the splits hold precomputed features")
        return
    splits = {k: v if isinstance(v, SeqDataset) else SeqDataset(sequence_branches(v), np.asarray(v.labels), v.ids)
              for k, v in splits.items()}  # memory-mapped splits (chromatin tasks) read into memory  # fmt: skip
    report = duplicate_report(splits)
    for line in report.lines():
        print(line)
    print(f"shared across splits: {report.n_across}")
    start = time.perf_counter()
    counts = nd.split_pair_counts(splits, branch_names=("enhancer", "promoter") if n_branches == 2 else ())
    print(f"near-duplicates (canonical {nd.K}-mer Jaccard >= {nd.THRESHOLD}, MinHash {nd.NUM_PERM} permutations; "
          f"{time.perf_counter() - start:.1f} s): rows of the second split with one in the first")  # fmt: skip
    for count in counts:
        print(count.line())
