"""Is bf16 autocast on the CPU within noise of fp32? Each case is trained twice with the same seed, split and
settings, `train.amp=false` (fp32) and `train.amp=true` (bf16 where the CPU has bf16 units), on one thread; the two
models' validation predictions are compared by the repository's paired tests (`harness.evaluation.paired`):
DeLong's test of the AUROC difference for binary tasks, the paired bootstrap of the median per-label AUROC for
multi-label ones. Printed per case and seed: both AUROCs, Δ = bf16 − fp32 with its 95% CI and p, whether it is
within noise (p ≥ 0.05 and |Δ| ≤ `--max-delta`), and the training speed ratio (sequences/s, bf16 / fp32). With
two or more seeds, fp32 of the first seed against fp32 of each other seed gives the seed-to-seed difference the
same test sees.

Cases (small enough for minutes on one thread): basset on `enhancers.synthetic` (binary, n 2000, 200 bp) and on
`chromatin.synthetic` (12 labels, 200 bp, n 3000), kmer_attention on `enhancers.synthetic` (n 6000) and on iEnhancer-2L
(`$REGBENCH_DATA`), each with the model's own training defaults, `--max-epochs` at most.

    REGBENCH_DATA=... .venv/bin/python -m bench.amp_paired [--cases ...] [--seeds 0] [--max-epochs 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.evaluation.metrics import binary_metrics, multilabel_metrics
from harness.evaluation.paired import PairedTest, delong, multilabel_resampled, paired_from_resamples
from harness.plugins import make_task
from harness.training.fit import fit
from harness.training.precision import amp_dtype, dtype_name
from harness.training.run import RunRequest, load_data

CASES: dict[str, tuple[str, str, dict[str, Any]]] = {  # name → (task, model, data options)
    "basset/enhancers.synthetic": ("enhancers.synthetic", "basset", {"n": 2000}),
    "basset/chromatin.synthetic": ("chromatin.synthetic", "basset", {"n": 3000, "length": 200}),
    "kmer_attention/enhancers.synthetic": ("enhancers.synthetic", "kmer_attention", {"n": 6000}),
    "kmer_attention/ienhancer2l": ("enhancers.ienhancer2l", "kmer_attention", {}),
}
N_BOOT = 2000


@dataclass
class Trained:
    """One fit's validation labels `(N,)`/`(N, C)`, scores of the same shape, training sequences/s and epochs."""

    labels: np.ndarray
    scores: np.ndarray
    rate: float
    epochs: int

    @property
    def binary(self) -> bool:
        return self.labels.ndim == 1 or self.labels.shape[1] == 1

    @property
    def auroc(self) -> float:
        """AUROC (binary) or median per-label AUROC (multi-label) on validation."""
        if self.binary:
            return binary_metrics(self.labels.ravel(), self.scores.ravel())["auroc"]
        return multilabel_metrics(self.labels, self.scores)[0]["auroc_median"]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def train(case: str, amp: str, seed: int, max_epochs: int) -> Trained:
    """Fit `case` with `train.amp=amp` and `seed`; its model's training defaults, at most `max_epochs` epochs."""
    task_name, model, data = CASES[case]
    task = make_task(task_name, dict(data))
    settings = {"train": {"amp": amp, "device": "cpu", "threads": 1, "progress": False}, "data": data}
    run = RunRequest(task_name, model, settings, seed=seed).resolve(task=task)
    cfg = dataclasses.replace(run.cfg, max_epochs=min(run.cfg.max_epochs, max_epochs))
    splits = load_data(run).splits
    result = fit(task, run.plugin, run.hp, cfg, splits=splits)
    val = splits["val"]
    return Trained(
        np.asarray(val.labels), np.asarray(result.predictor.score(val)), result.throughput, result.epochs_run
    )


def paired(a: Trained, b: Trained) -> PairedTest:
    """A − B: DeLong for one label, the paired bootstrap of the median per-label AUROC for several."""
    if a.binary:
        return delong(a.labels.ravel(), a.scores.ravel(), b.scores.ravel())
    ra, rb = (multilabel_resampled(t.labels, t.scores, N_BOOT, 0) for t in (a, b))
    return paired_from_resamples("auroc_median", ra, rb)


def row(case: str, what: str, test: PairedTest, max_delta: float, ratio: str) -> str:
    noise = test.p_value >= 0.05 and abs(test.delta) <= max_delta
    return (f"{case:<36}{what:<18}{test.delta:>+8.4f}  [{test.ci_low:+.4f}, {test.ci_high:+.4f}]{test.p_value:>7.3f}"
            f"  {test.test:<17}{'yes' if noise else 'NO':<7}{ratio}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--max-delta", type=float, default=0.01, help="largest |Δ AUROC| called within noise")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average before: {loadavg()}; cores: {os.cpu_count()}; torch threads: 1; "
          f"train.amp=true trains in {dtype_name(amp_dtype('cpu', 'true'))} here")  # fmt: skip
    print(f"{'case':<36}{'A − B':<18}{'Δ AUROC':>8}  {'95% CI':<18}{'p':>7}  {'test':<17}{'noise':<7}bf16/fp32 seq/s")
    for case in args.cases:
        fp32: dict[int, Trained] = {}
        for seed in args.seeds:
            start = time.perf_counter()
            fp32[seed], bf16 = train(case, "false", seed, args.max_epochs), train(case, "true", seed, args.max_epochs)
            test = paired(bf16, fp32[seed])
            print(row(case, f"bf16 − fp32 s{seed}", test, args.max_delta, f"{bf16.rate / fp32[seed].rate:.2f}×")
                  + f"  (AUROC fp32 {fp32[seed].auroc:.4f}, bf16 {bf16.auroc:.4f}; epochs "
                  f"{fp32[seed].epochs}/{bf16.epochs}; {time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
        first = args.seeds[0]
        for seed in args.seeds[1:]:
            print(
                row(case, f"fp32 s{seed} − s{first}", paired(fp32[seed], fp32[first]), args.max_delta, "(seed noise)")
            )
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
