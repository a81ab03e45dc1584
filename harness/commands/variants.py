"""`regbench variants --run ID --input FILE`: score variant effects with a trained model and, where the file carries
ground truth (`label`, `effect`), measure them as a benchmark (`harness.evaluation.variant_metrics`)."""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """\
input (TSV with a header):
  id, sequence, pos, ref, alt          pos 1-based within the sequence
  id, chrom, pos, ref, alt  --genome   windows of the model's input length centred on the variant
  optional: label (1 causal / significant, 0 control), effect (measured effect size)

examples:
  regbench variants --run RUN_ID --input variants.tsv
  regbench variants --run RUN_ID --input snps.tsv --genome hg38.fa --out scored/ --min-effect 0.1
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("variants", help="variant effects Δ = output(alt) − output(ref) and how well they match truth",
                       description="Score each single-base variant with a logged model (Δ of the logit for "
                       "classifiers, of the prediction for regression, averaged over both strands); with a label "
                       "column report AUROC/AUPRC of |Δ|, with an effect column Pearson/Spearman of Δ and sign "
                       "agreement, each with a bootstrap 95% CI, logged on a run nested under --run.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--run", required=True, help="run id of a trained model (train run, refit or cell)")
    p.add_argument("--input", required=True, help="variants TSV (see below)")
    p.add_argument("--genome", help="genome FASTA (pyfaidx) for inputs with chrom, pos")
    p.add_argument("--out", default="variants_out", help="output folder (default variants_out)")
    p.add_argument("--output", default=None, metavar="NAME|INDEX",
                   help="the output of a multi-output model to score (default: mean |Δ| over outputs)")  # fmt: skip
    p.add_argument("--min-effect", type=float, default=0.0, help="|effect| above which sign agreement counts")
    p.add_argument("--skip-mismatch", action="store_true", help="leave out variants whose ref mismatches (counted)")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per forward pass (default 256)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.set_defaults(func=run)


def output_index(value: str | None, names: list[str]) -> int | None:
    """`--output` as an index into the model's outputs: a label name or a 0-based index; None stays None."""
    if value is None:
        return None
    if value in names:
        return names.index(value)
    if value.isdigit() and int(value) < max(len(names), 1):
        return int(value)
    raise ValueError(f"--output {value!r}: not one of the model's outputs ({', '.join(names[:10]) or '0'})")


def run(args: argparse.Namespace) -> int:
    from harness.evaluation.reload import load_predictor, single_sequence_dataset
    from harness.evaluation.variant_metrics import variant_metrics
    from harness.interpret.ism import logit_fn, read_variants, variant_effects
    from harness.paths import input_file, output_dir
    from harness.training.predictor import TorchPredictor

    for name in ("input", "genome"):
        if getattr(args, name):
            input_file(getattr(args, name), f"--{name} file")
    out = output_dir(args.out, "output folder")
    predictor, meta = load_predictor(args.run, args.device)
    io = meta["io"]
    regression = io["target"] == "regression"
    output = output_index(args.output, list(io.get("label_names") or []))
    variants = read_variants(args.input, args.genome, int(io["lengths"][0]), args.skip_mismatch)
    single_sequence_dataset(variants.ids, variants.seqs, None, meta, args.input)  # checks lengths and bases
    device = predictor.device if isinstance(predictor, TorchPredictor) else "cpu"
    fn = logit_fn(predictor, device, regression)
    table = variant_effects(fn, variants, args.batch_size, output, device, both_strands=True,
                            probabilities=not regression)  # fmt: skip
    table.to_csv(out / "variants.tsv", sep="\t", index=False, float_format="%.6g")
    metrics = variant_metrics(table["abs_delta"].to_numpy(), table["delta"].to_numpy(), variants.labels,
                              variants.effects, args.min_effect)  # fmt: skip
    skipped = f"; {variants.skipped} left out (ref mismatch)" if variants.skipped else ""
    print(f"scored {len(table)} variants with {meta['model']} ({meta['task']}){skipped}: {out / 'variants.tsv'}")
    for name, (value, low, high) in metrics.items():
        print(f"{name}: {value:.4f} [{low:.4f}, {high:.4f}]")
    run_id = log_variants(args, meta, metrics, out / "variants.tsv", len(table), variants.skipped)
    print(f"logged as run {run_id}, nested under {args.run}")
    return 0


def log_variants(args: argparse.Namespace, meta: dict[str, Any], metrics: dict[str, tuple[float, float, float]],
                 table: Any, n: int, skipped: int) -> str:  # fmt: skip
    """A run nested under the scored run (`regbench.kind=variants`) with the metrics and `variants.tsv`."""
    from pathlib import Path

    from harness.evaluation.reload import model_run
    from harness.tracking import store

    parent = model_run(args.run)
    experiment = store.client().get_experiment(store.get_run(parent).info.experiment_id).name
    tags = {"regbench.kind": "variants", "model": meta["model"], "task": meta["task"],
            "variants_file": str(Path(args.input).resolve())}  # fmt: skip
    with store.run(experiment, f"variants: {Path(args.input).name}", tags, parent_run_id=parent) as log:
        values = {"variants_n": float(n), "variants_skipped": float(skipped)}
        for name, (value, low, high) in metrics.items():
            values.update({name: value, f"{name}_ci_low": low, f"{name}_ci_high": high})
        log.metrics(values)
        log.file(table)
        return log.run_id
