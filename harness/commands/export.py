"""`regbench export`: write one split of a task as FASTA, TSV or CSV, the inputs `predict`, `evaluate` and
`mlflow models predict` read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.limits import ascii_int

FASTA_SUFFIXES = (".fa", ".fasta", ".fna")
TABLE_SUFFIXES = {".tsv": "\t", ".txt": "\t", ".csv": ","}

EPILOG = """\
formats (by the extension of --out):
  .fa .fasta .fna  FASTA, headers = the split's ids (single-sequence tasks): for `regbench predict`
  .tsv .txt        a header, then sequence<TAB>label: for `regbench evaluate` and `regbench predict`
  .csv             the columns a logged model reads: for `mlflow models predict -i FILE -t csv`
  columns: sequence, label; multi-label tasks: id, sequence, then one 0/1 column per label named by the
  label (FASTA headers: `>id label=NAME,NAME` with the positive labels); pair tasks: id, enhancer,
  promoter, label (TSV and CSV only); CSV files have no label columns.

examples:
  regbench export --task enhancers.synthetic --split test --out test.fa
  regbench export --task enhancers.synthetic --split test --out test.tsv --set data.n=600
  regbench export --task epi.synthetic --split test --out pairs.csv --limit 100
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a task's split as FASTA/TSV/CSV (inputs for predict and evaluate)",
                       description="Write the train, val or test split of TASK, as regbench builds it for training "
                       "(same data settings, same split), to a file.", epilog=EPILOG)  # fmt: skip
    p.add_argument("--task", required=True, help="task name (see `regbench tasks`)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split (default test)")
    p.add_argument("--out", required=True, help="output file: .fa/.fasta/.fna, .tsv/.txt or .csv")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                   help="a data setting of the task (repeatable), as in `regbench train`")  # fmt: skip
    p.add_argument("--limit", type=ascii_int, default=None, metavar="N", help="write only the first N rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.config import ConfigError, parse_overrides
    from harness.plugins import make_task

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in FASTA_SUFFIXES and suffix not in TABLE_SUFFIXES:
        raise ValueError(f"--out {args.out}: give a .fa/.fasta/.fna, .tsv/.txt or .csv file")
    overrides = parse_overrides(args.overrides)
    others = [f"{ns}.{k}" for ns in ("model", "train") for k in overrides[ns]]
    if others:
        raise ConfigError(f"export takes data.* settings only, not {', '.join(others)}")
    task = make_task(args.task, overrides["data"])
    frame = split_frame(task.splits()[args.split], task.io, args.limit)
    label_columns = list(task.io.label_names) if task.io.target == "multilabel" else ["label"]
    if suffix in FASTA_SUFFIXES:
        if "sequence" not in frame.columns:
            raise ValueError(f"task {task.name} has {task.io.inputs} inputs; export it as .tsv or .csv")
        out.write_text("".join(f">{i}{h}\n{s}\n" for i, h, s in zip(frame["id"], fasta_labels(frame, task.io),
                                                                   frame["sequence"], strict=True)))  # fmt: skip
    else:
        table = frame.drop(columns=label_columns) if suffix == ".csv" else frame
        if "sequence" in table.columns and task.io.target != "multilabel":  # single-sequence ids go to FASTA headers
            table = table.drop(columns="id")
        table.to_csv(out, sep=TABLE_SUFFIXES[suffix], index=False)
    print(f"wrote {len(frame)} rows of {task.name} {args.split} to {out}", file=sys.stderr)
    return 0


def fasta_labels(frame: Any, io: Any) -> list[str]:
    """Per row, the FASTA header's tail: ` label=NAME,...` (the positive labels) for a multi-label task, else ''."""
    if io.target != "multilabel":
        return [""] * len(frame)
    names = list(io.label_names)
    hits = frame[names].to_numpy(bool)
    return [" label=" + ",".join(n for n, on in zip(names, row, strict=True) if on) for row in hits]


def split_frame(dataset: Any, io: Any, limit: int | None) -> Any:
    """A split as a DataFrame: id, `sequence` (or `enhancer`, `promoter`), then `label` (the measured value for a
    regression task; one 0/1 column per label, named by the label, for a multi-label task); a feature-table task
    raises ValueError."""
    import numpy as np
    import pandas as pd

    from harness.data.datasets import sequence_branches
    from harness.data.encode import decode

    n = len(dataset) if limit is None else min(limit, len(dataset))
    try:
        branches = sequence_branches(dataset)
    except TypeError:
        raise ValueError(
            f"this task's inputs are feature tables ({io.inputs}), not sequences: nothing to export"
        ) from None
    names = ("sequence",) if len(branches) == 1 else ("enhancer", "promoter")
    frame = pd.DataFrame({"id": np.asarray(dataset.ids[:n]).astype(str)})
    for name, branch in zip(names, branches, strict=True):
        frame[name] = [decode(c, int(k)) for c, k in zip(branch.codes[:n], branch.lengths[:n], strict=True)]
    labels = np.asarray(dataset.labels[:n])
    if labels.ndim == 1:
        frame["label"] = labels if io.target == "regression" else labels.astype(int)
    else:
        for j, name in enumerate(io.label_names or range(labels.shape[1])):
            frame[str(name)] = labels[:, j].astype(int)
    return frame
