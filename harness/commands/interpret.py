"""`regbench ism` and `regbench explain`: per-base interpretation of a logged model on your sequences."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.interpret import GRADIENT_METHODS, METHODS
from harness.limits import ascii_int

if TYPE_CHECKING:
    import numpy as np
    import torch

    from harness.data.datasets import Seqs
    from harness.spec import Predictor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ism",
        help="in-silico saturation mutagenesis of sequences, or effects of listed variants",
        description="For every position and alternative base, the change in the model's logit and probability. "
        "Writes per sequence <id>.ism.npy (L x 4 delta logits over A,C,G,T; 0 at the reference base, NaN outside "
        "--window), ism.tsv (id, position, ref, alt, delta_logit, delta_prob), and for the first --plots sequences "
        "a mutation map and a logo PNG. With --variants: variants.tsv with logit_ref, logit_alt, delta, prob_*.",
        epilog="examples:\n  regbench export --task enhancers.synthetic --split test --out test.fa --limit 5\n"
        "  regbench ism --run RUN_ID --input test.fa --window 50:150\n"
        "  regbench ism --run RUN_ID --variants variants.tsv --genome hg19.fa",
    )
    _common(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="FASTA, or TSV whose first column is the sequence")
    source.add_argument(
        "--variants",
        help="TSV with header id, sequence, pos, ref, alt (or id, chrom, pos, ref, alt with --genome); pos is 1-based",
    )
    p.add_argument("--genome", help="indexed-or-indexable genome FASTA (pyfaidx) for --variants with chrom, pos")
    p.add_argument(
        "--length",
        type=ascii_int,
        default=0,
        help="window length around genomic variants (default: the model's fixed input length)",
    )
    p.add_argument("--window", help="START:END, 1-based inclusive positions to mutate (default: all)")
    p.add_argument("--batch-size", type=ascii_int, default=512, help="mutants per forward pass (default 512)")
    p.set_defaults(func=run_ism)

    e = sub.add_parser(
        "explain",
        help="per-base attributions: saliency, integrated gradients, ISM, or attention maps",
        description="Writes per sequence <id>.<method>.npy — (L x 4) attributions in the observed base's column "
        "(saliency = gradient x input, integrated_gradients with an all-N baseline, ism = minus the mean logit "
        "change of the substitutions) or, for --method attention, (layers x heads x L x L) attention rolled up "
        "from k-mer tokens to bases — and a logo / heatmap PNG for the first --plots sequences.",
        epilog="examples:\n  regbench explain --run RUN_ID --input test.fa --method saliency\n"
        "  regbench explain --run RUN_ID --input test.fa --method attention --plots 3",
    )
    _common(e)
    e.add_argument("--input", required=True, help="FASTA, or TSV whose first column is the sequence")
    e.add_argument("--method", required=True, choices=METHODS)
    e.add_argument("--batch-size", type=ascii_int, default=32, help="sequences per batch (default 32; ism: mutants)")
    e.add_argument("--steps", type=ascii_int, default=50, help="integrated-gradients steps (default 50)")
    e.set_defaults(func=run_explain)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="MLflow run id of a logged model (printed by `regbench train`)")
    p.add_argument("--out", default="interpret", help="output folder (default ./interpret)")
    p.add_argument("--output", type=ascii_int, default=0, help="model output (label) index to explain (default 0)")
    p.add_argument("--plots", type=ascii_int, default=10, help="draw figures for the first N sequences (default 10)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")


def file_stems(ids: Iterable[Any]) -> list[str]:
    """File-name-safe, unique stems for sequence ids (`seq/1` → `seq_1`; repeats get `.2`, `.3`, ...)."""
    seen: dict[str, int] = {}
    stems = []
    for raw in ids:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(raw)).strip("_.") or "seq"
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}.{seen[stem]}")
    return stems


def _load(args: argparse.Namespace) -> tuple[Predictor, dict[str, Any], str, Path]:
    from harness.evaluation.reload import load_predictor
    from harness.paths import input_file, output_dir
    from harness.training.predictor import TorchPredictor

    for name in ("input", "variants", "genome"):  # the files this command reads, checked before any work
        if getattr(args, name, None):
            input_file(getattr(args, name), f"--{name} file")
    out = output_dir(args.out, "output folder")
    predictor, meta = load_predictor(args.run, args.device)
    device = predictor.device if isinstance(predictor, TorchPredictor) else "cpu"
    return predictor, meta, device, out


def _read(args: argparse.Namespace, meta: dict[str, Any]) -> tuple[np.ndarray, Seqs]:
    from harness.commands.predict import read_scored
    from harness.evaluation.reload import single_sequence_dataset

    ids, seqs, _ = read_scored(args.input, meta, labelled=False)
    return ids, single_sequence_dataset(ids, seqs, None, meta, args.input).seqs[0]


def _save_figure(fig: Any, path: Path) -> None:
    from harness.reporting import plots

    fig.savefig(path, dpi=110)
    plots.close(fig)


def run_ism(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from harness.evaluation.reload import single_sequence_dataset
    from harness.interpret.figures import logo_figure, mutation_map_figure
    from harness.interpret.ism import logit_fn, parse_window, read_variants, saturation_mutagenesis, variant_effects

    if args.genome and not args.variants:
        raise ValueError("--genome applies to --variants with columns id, chrom, pos, ref, alt")
    predictor, meta, device, out = _load(args)
    fn = logit_fn(predictor, device)
    if args.variants:
        variants = read_variants(args.variants, args.genome, args.length or int(meta["io"]["lengths"][0]))
        single_sequence_dataset(variants.ids, variants.seqs, None, meta, args.variants)  # checks lengths and bases
        table = variant_effects(fn, variants, args.batch_size, args.output, device)
        table.to_csv(out / "variants.tsv", sep="\t", index=False, float_format="%.6g")
        print(f"wrote effects of {len(table)} variants to {out / 'variants.tsv'}")
        return 0
    ids, seqs = _read(args, meta)
    results = saturation_mutagenesis(fn, seqs, ids, parse_window(args.window), args.batch_size, args.output, device)
    for i, (stem, r) in enumerate(zip(file_stems(ids), results, strict=True)):
        np.save(out / f"{stem}.ism.npy", r.delta_logit)
        if i < args.plots:
            _save_figure(
                mutation_map_figure(r.delta_logit, r.codes, f"{r.seq_id}: ISM Δ logit"), out / f"{stem}.ism.png"
            )
            importance = np.where(np.arange(4)[None, :] == r.codes[:, None], r.importance()[:, None], 0.0)
            _save_figure(
                logo_figure(importance, f"{r.seq_id}: ISM importance", "−mean Δ logit"), out / f"{stem}.ism_logo.png"
            )
    table = pd.concat([r.table() for r in results], ignore_index=True)
    table.to_csv(out / "ism.tsv", sep="\t", index=False, float_format="%.6g")
    print(f"wrote ISM of {len(results)} sequences ({len(table)} mutants) to {out}/")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    import numpy as np

    from harness.interpret.attributions import gradient_attributions, ism_attributions
    from harness.interpret.figures import logo_figure
    from harness.interpret.ism import logit_fn
    from harness.training.predictor import TorchPredictor

    predictor, meta, device, out = _load(args)
    ids, seqs = _read(args, meta)
    if args.method != "ism" and not isinstance(predictor, TorchPredictor):
        raise ValueError(
            f"--method {args.method} needs a torch model; run {args.run} is a {meta['model']} model (use --method ism)"
        )
    if args.method == "attention":
        return _attention(predictor.model.encoder, ids, seqs, args, device, out)  # type: ignore[union-attr]
    if args.method in GRADIENT_METHODS:
        model = predictor.model  # type: ignore[union-attr]
        attributions = gradient_attributions(model, seqs, args.method, args.output, args.batch_size, args.steps, device)
    else:
        attributions = ism_attributions(logit_fn(predictor, device), seqs, args.output, args.batch_size * 16, device)
    for i, (stem, seq_id, attr) in enumerate(zip(file_stems(ids), ids, attributions, strict=True)):
        np.save(out / f"{stem}.{args.method}.npy", attr)
        if i < args.plots:
            fig = logo_figure(attr, f"{seq_id}: {args.method}", "attribution")
            _save_figure(fig, out / f"{stem}.{args.method}.png")
    print(f"wrote {args.method} attributions of {len(ids)} sequences to {out}/")
    return 0


def _attention(
    encoder: torch.nn.Module, ids: np.ndarray, seqs: Seqs, args: argparse.Namespace, device: str, out: Path
) -> int:
    import numpy as np
    import torch

    from harness.interpret.attention_rollup import base_attention
    from harness.interpret.figures import attention_figure

    stems = file_stems(ids)
    for start in range(0, len(seqs), args.batch_size):
        idx = np.arange(start, min(start + args.batch_size, len(seqs)))
        codes, mask = seqs.take(idx)
        maps = base_attention(
            encoder.to(device), torch.from_numpy(codes.astype(np.int64)).to(device), torch.from_numpy(mask).to(device)
        )
        for j, m in zip(idx, maps, strict=True):
            np.save(out / f"{stems[j]}.attention.npy", m)
            if j < args.plots:
                _save_figure(attention_figure(m, f"{ids[j]}: attention (bases)"), out / f"{stems[j]}.attention.png")
    print(f"wrote attention maps of {len(ids)} sequences to {out}/")
    return 0
