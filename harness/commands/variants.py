"""`regbench variants --run ID --input FILE`: score variant effects with a trained model and, where the file carries
ground truth (`label`, `effect`), measure them as a benchmark (`harness.evaluation.variant_metrics`)."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
input (TSV with a header, or a VCF):
  id, sequence, pos, ref, alt          pos 1-based within the sequence
  id, chrom, pos, ref, alt  --genome   windows of the model's input length centred on the variant
  optional: label (1 causal / significant, 0 control), effect (measured effect size)
  VCF (plain or .gz) --genome          CHROM POS ID REF ALT [QUAL FILTER INFO]: one variant per ALT allele,
                                       id = ID or chrom:pos:ref:alt, label= and effect= read from INFO

examples:
  regbench variants --run RUN_ID --input variants.tsv
  regbench variants --run RUN_ID --input snps.tsv --genome hg38.fa --out scored/ --min-effect 0.1
  regbench variants --run RUN_ID --input snps.vcf.gz --genome hg38.fa
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("variants", help="variant effects Δ = output(alt) − output(ref) and how well they match truth",
                       description="Score each single-base variant with a logged model (Δ of the logit for "
                       "classifiers, of the prediction for regression, averaged over both strands); with a label "
                       "column report AUROC/AUPRC of |Δ|, with an effect column Pearson/Spearman of Δ and sign "
                       "agreement, each with a bootstrap 95% CI, logged on a run nested under --run.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--run", required=True, help="run id of a trained model (train run, refit or cell)")
    p.add_argument("--input", required=True, help="variants TSV or VCF (see below)")
    p.add_argument("--genome", help="genome FASTA (pyfaidx) for inputs with chrom, pos")
    p.add_argument("--out", default="variants_out", help="output folder (default variants_out)")
    p.add_argument("--output", default=None, metavar="NAME|INDEX",
                   help="the output of a multi-output model to score (default: mean |Δ| over outputs)")  # fmt: skip
    p.add_argument("--min-effect", type=float, default=0.0, help="|effect| above which sign agreement counts")
    p.add_argument("--skip-mismatch", action="store_true", help="leave out variants whose ref mismatches (counted)")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per forward pass (default 256)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.evaluation.variant_runs import TABLE, log_variants, score_variants
    from harness.paths import input_file, output_dir

    for name in ("input", "genome"):
        if getattr(args, name):
            input_file(getattr(args, name), f"--{name} file")
    out = output_dir(args.out, "output folder")
    scored = score_variants(args.run, args.input, args.genome, out, args.output, args.min_effect, args.skip_mismatch,
                            args.batch_size, args.device)  # fmt: skip
    skipped = f"; {scored.skipped} left out (ref mismatch)" if scored.skipped else ""
    meta = scored.meta
    print(f"scored {len(scored.table)} variants with {meta['model']} ({meta['task']}){skipped}: {out / TABLE}")
    for name, (value, low, high) in scored.metrics.items():
        print(f"{name}: {value:.4f} [{low:.4f}, {high:.4f}]")
    run_id = log_variants(args.run, scored, args.input, args.genome, out, Path(args.input).name)
    print(f"logged as run {run_id}, nested under {args.run}")
    return 0
