"""`regbench predict` and `regbench evaluate`: score files with a logged model."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

OVERLAP_NOTE = """\
A warning line on stderr says how many input sequences (either strand) are in the run's training split, rebuilt
from the run's task and data settings when its digest matches the run's dataset_digest: scores on training
sequences overestimate performance on new data."""
PREDICT_EPILOG = f"""\
examples:
  regbench export --task enhancers.synthetic --split test --out test.fa
  regbench predict --run RUN_ID --input test.fa --output scores.tsv
  regbench predict --run RUN_ID --input test.fa --output - | head -3

{OVERLAP_NOTE}"""
EVALUATE_EPILOG = f"""\
examples:
  regbench export --task enhancers.synthetic --split test --out test.tsv
  regbench evaluate --run RUN_ID --input test.tsv --threshold 0.4

{OVERLAP_NOTE}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="score a FASTA/TSV with a logged model",
                       description="Score the sequences of a FASTA or TSV file with the model logged by RUN and "
                       "write a TSV with columns id (FASTA header or row number) and score (probability of the "
                       "positive class; score_0.. for multi-label models).", epilog=PREDICT_EPILOG)  # fmt: skip
    p.add_argument("--run", required=True, help="MLflow run id (printed by `regbench train`, or a study parent run)")
    p.add_argument("--input", required=True, help="FASTA, or TSV whose first column is the sequence")
    p.add_argument("--output", required=True, help="output TSV path ('-' for stdout)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.set_defaults(func=run_predict)
    e = sub.add_parser(
        "evaluate",
        help="metrics with 95%% CIs of a logged model on a labelled TSV",
        description="Score a labelled TSV (sequence<TAB>label) with the model logged by RUN and print its metrics with "
        "bootstrap 95% CIs (binary tasks).",
        epilog=EVALUATE_EPILOG,
    )
    e.add_argument("--run", required=True, help="MLflow run id")
    e.add_argument("--input", required=True, help="TSV with columns sequence<TAB>label")
    e.add_argument("--threshold", type=float, default=0.5, help="threshold for the thresholded metrics (default 0.5)")
    e.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    e.set_defaults(func=run_evaluate)


def check_input_lengths(ids: np.ndarray, seqs: list[str], meta: dict[str, Any], source: str) -> None:
    """Refuse, naming the record and its length, a sequence longer than the run's model takes (`max_length`)."""
    from harness.data.encode import check_lengths
    from harness.plugins import recorded_model
    from harness.tracking.logged_model import io_spec

    plugin = recorded_model(meta)
    limit = plugin.max_length(meta["hp"], io_spec(meta)) if plugin.max_length is not None else None
    check_lengths(ids, [len(s) for s in seqs], limit, plugin.name, source)


def read_scored(path: str, meta: dict[str, Any], labelled: bool) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """`(ids, sequences, labels)` of the input file, each sequence checked against the model's maximum length."""
    from harness.data.readers import read_sequences

    ids, seqs, labels = read_sequences(path, labelled=labelled)
    check_input_lengths(ids, seqs, meta, path)
    return ids, seqs, labels


def run_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.evaluation.reload import load_predictor, single_sequence_dataset
    from harness.paths import input_file, output_file

    predictor, meta = load_predictor(args.run, args.device)  # first: an unknown run is named before the files
    input_file(args.input, "input file")
    if args.output != "-":
        output_file(args.output, "output file")
    ids, seqs, _ = read_scored(args.input, meta, labelled=False)
    dataset = single_sequence_dataset(ids, seqs, None, meta, args.input)
    _warn_overlap(args, meta, dataset)
    scores = predictor.score(dataset)
    table = pd.DataFrame({"id": ids, "score": scores}) if scores.ndim == 1 else pd.DataFrame(
        {"id": ids, **{f"score_{j}": scores[:, j] for j in range(scores.shape[1])}})  # fmt: skip
    table.to_csv(sys.stdout if args.output == "-" else args.output, sep="\t", index=False, float_format="%.6g")
    if args.output != "-":
        print(f"wrote {len(table)} scores to {args.output}", file=sys.stderr)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from harness.evaluation.bootstrap import bootstrap_binary
    from harness.evaluation.metrics import binary_metrics
    from harness.evaluation.reload import load_predictor, single_sequence_dataset
    from harness.paths import input_file

    predictor, meta = load_predictor(args.run, args.device)
    input_file(args.input, "input file")
    if meta["io"]["target"] != "binary":
        raise ValueError(f"evaluate supports binary tasks; run {args.run} was trained on {meta['task']}")
    ids, seqs, labels = read_scored(args.input, meta, labelled=True)
    dataset = single_sequence_dataset(ids, seqs, labels, meta, args.input)
    _warn_overlap(args, meta, dataset)
    scores = predictor.score(dataset)
    point = binary_metrics(labels, scores, args.threshold)
    cis = bootstrap_binary(labels, scores, args.threshold)
    print(
        f"{len(labels)} sequences from {args.input}, model {meta['model']} ({meta['task']}), threshold {args.threshold}"
    )
    n_pos = int(labels.sum())
    one_class = n_pos in (0, len(labels))
    for name, value in point.items():
        low, high = cis[name]
        if not np.isfinite(value):
            why = f"the labels hold one class only ({n_pos} positives of {len(labels)})" if one_class else "no cases"
            print(f"{name:<10} undefined: {why}")
        elif not (np.isfinite(low) and np.isfinite(high)):
            print(f"{name:<10} {value:.4f}  95% CI undefined (resamples of {len(labels)} rows hold one class)")
        else:
            print(f"{name:<10} {value:.4f}  95% CI [{low:.4f}, {high:.4f}]")
    return 0


def _warn_overlap(args: argparse.Namespace, meta: dict, dataset: Any) -> None:
    """One line on stderr when the input holds sequences of the run's training split."""
    from harness.evaluation.reload import training_overlap

    warning = training_overlap(args.run, meta, dataset.seqs[0])
    if warning:
        print(f"regbench {args.command}: {warning}", file=sys.stderr)
