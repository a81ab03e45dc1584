"""One variant set scored with one logged model and logged as a run nested under the model's run
(`regbench.kind=variants`): what `regbench variants` does, and what a benchmark's `variants:` key does for every
refit (`harness.benchmark.variant_board`).

The nested run holds the metrics of `harness.evaluation.variant_metrics` (each with `_ci_low`/`_ci_high`),
`variants_n`, `variants_skipped` and `variants.tsv` (per variant: id, pos, ref, alt, the model's outputs, `delta`,
`abs_delta`, and the set's `label`/`effect` where given). Tags: `variants_set` (a name: the study file's, or the
file's stem), `variants_file`, and `regbench.variants_digest` (the file's SHA-256 and the genome path), by which a
benchmark finds the sets a refit has already been scored on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.evaluation.variant_metrics import Metric, variant_metrics

DIGEST_TAG = "regbench.variants_digest"
TABLE = "variants.tsv"


@dataclass(frozen=True)
class Scored:
    """A variant set scored by one model: the per-variant `table`, its `metrics` `{name: (value, low, high)}`,
    the variants left out for a ref mismatch, and the model's metadata."""

    table: pd.DataFrame
    metrics: dict[str, Metric]
    skipped: int
    meta: dict[str, Any]


def variants_digest(path: str | Path, genome: str | None) -> str:
    """The SHA-256 of the variants file and the resolved genome path: a set scored once is not scored again."""
    digest = hashlib.sha256(Path(path).read_bytes())
    digest.update(str(Path(genome).resolve() if genome else "").encode())
    return digest.hexdigest()[:32]


def output_index(value: str | None, names: list[str]) -> int | None:
    """`--output` as an index into the model's outputs: a label name or a 0-based index; None stays None."""
    if value is None:
        return None
    if value in names:
        return names.index(value)
    if value.isdigit() and int(value) < max(len(names), 1):
        return int(value)
    raise ValueError(f"--output {value!r}: not one of the model's outputs ({', '.join(names[:10]) or '0'})")


def score_variants(
    run_id: str,
    path: str,
    genome: str | None,
    out: Path,
    output: str | None = None,
    min_effect: float = 0.0,
    skip_mismatch: bool = False,
    batch_size: int = 256,
    device: str = "auto",
) -> Scored:
    """Δ = output(alt) − output(ref) of every variant, both strands averaged (`interpret.ism.variant_effects`),
    written to `out/variants.tsv`, and its metrics against the set's labels/effects."""
    from harness.evaluation.reload import load_predictor, single_sequence_dataset
    from harness.interpret.ism import logit_fn, read_variants, variant_effects
    from harness.training.predictor import TorchPredictor

    predictor, meta = load_predictor(run_id, device)
    io = meta["io"]
    regression = io["target"] == "regression"
    column = output_index(output, list(io.get("label_names") or []))
    variants = read_variants(path, genome, int(io["lengths"][0]), skip_mismatch)
    single_sequence_dataset(variants.ids, variants.seqs, None, meta, path)  # checks lengths and bases
    place = predictor.device if isinstance(predictor, TorchPredictor) else "cpu"
    fn = logit_fn(predictor, place, regression)
    table = variant_effects(fn, variants, batch_size, column, place, both_strands=True, probabilities=not regression)
    for name, values in (("label", variants.labels), ("effect", variants.effects)):
        if values is not None:
            table[name] = values
    table.to_csv(out / TABLE, sep="\t", index=False, float_format="%.6g")
    metrics = variant_metrics(table["abs_delta"].to_numpy(), table["delta"].to_numpy(), variants.labels,
                              variants.effects, min_effect)  # fmt: skip
    return Scored(table, metrics, variants.skipped, meta)


def log_variants(run_id: str, scored: Scored, path: str, genome: str | None, out: Path, name: str) -> str:
    """A run nested under the run holding the model of `run_id` with the metrics and `variants.tsv`."""
    from harness.evaluation.reload import model_run
    from harness.tracking import store

    parent = model_run(run_id)
    experiment = store.client().get_experiment(store.get_run(parent).info.experiment_id).name
    tags = {"regbench.kind": "variants", "model": scored.meta["model"], "task": scored.meta["task"],
            "variants_set": name, "variants_file": str(Path(path).resolve()),
            DIGEST_TAG: variants_digest(path, genome)}  # fmt: skip
    with store.run(experiment, f"variants: {name}", tags, parent_run_id=parent) as log:
        values = {"variants_n": float(len(scored.table)), "variants_skipped": float(scored.skipped)}
        for metric, (value, low, high) in scored.metrics.items():
            values.update({metric: value, f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        log.metrics(values)
        log.file(out / TABLE)
        return log.run_id
