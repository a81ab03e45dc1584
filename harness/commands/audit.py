"""`regbench audit --task T`: exact duplicate sequences (either strand) within and across splits."""

from __future__ import annotations

import argparse

from harness.config import parse_overrides
from harness.paths import DataNotFoundError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="report duplicate sequences across a task's splits",
                       description="Report exact duplicate sequences (a sequence or its reverse complement) within "
                       "each split and shared between splits.",
                       epilog="examples:\n  regbench audit --task enhancers.ienhancer2l\n"
                       "  regbench audit --task epi.synthetic --set data.split=random")  # fmt: skip
    p.add_argument("--task", required=True, help="task name (see `regbench tasks`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                   help="task data option (repeatable)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.data.datasets import SeqDataset
    from harness.data.splits import duplicate_report
    from harness.plugins import make_task

    task = make_task(args.task, parse_overrides(args.overrides)["data"])
    audit_lines = task.audit_lines()  # e.g. EPI pair leakage, computed without loading sequences (no genome needed)
    for line in audit_lines:
        print(line)
    try:
        splits = task.splits()
    except DataNotFoundError as err:
        if not audit_lines:
            raise
        print(f"sequence duplicates not checked: {err}")
        return 0
    print(f"task {task.name} ({task.split_protocol}): " + ", ".join(f"{k}={len(v)}" for k, v in splits.items()))
    if not all(isinstance(ds, SeqDataset) for ds in splits.values()):
        print("sequence duplicates not checked: the splits hold precomputed features")
        return 0
    report = duplicate_report(splits)
    for line in report.lines():
        print(line)
    print(f"shared across splits: {report.n_across}")
    return 0
