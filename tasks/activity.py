"""`activity.synthetic`: an MPRA-style quantitative task (`IOSpec.target = "regression"`, primary metric Spearman ρ).

Each sequence is `data.length` uniform random bases with Poisson(0.6) copies of each of four motifs planted at
random positions and strands; its activity is `Σ_k w_k · count_k + noise`, weights `WEIGHTS` (two activators, two
repressors, chosen so the motifs' GC excess cancels), noise N(0, `data.noise`). `data.counts=true` makes it a
count (reads, for `train.loss=poisson`): Poisson(exp(0.5 · (Σ_k w_k · count_k + noise))). Splits: random
80/10/10 (seeded; `data.seed`). A model that counts the motifs reaches the noise ceiling; GC content and length
explain nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.config import Setting, Settings, merge
from harness.data.datasets import SeqDataset, Seqs
from harness.data.split_task import SplitTask
from harness.evaluation.regression import PRIMARY, regression_metrics
from harness.plugins import TASKS
from harness.spec import IOSpec
from tasks._synthetic_chromatin import MOTIFS

WEIGHTS = {"ETS": 1.0, "AP-1": 1.0, "E-box": -1.0, "NF-Y": -1.0}  # Σ w · (GC − length / 2) of the motifs = 0
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def generate(n: int, length: int, noise: float, seed: int, as_counts: bool = False
             ) -> tuple[list[str], np.ndarray, np.ndarray]:  # fmt: skip
    """`(sequences, activity (n,) float32, motif counts (n, 4))`."""
    rng = np.random.default_rng(seed)
    seqs, counts = [], np.zeros((n, len(WEIGHTS)), dtype=np.int64)
    for i in range(n):
        bases = rng.choice(list("ACGT"), size=length)
        for name in WEIGHTS:
            motif = MOTIFS[name]
            for _ in range(int(rng.poisson(0.6))):
                site = motif if rng.random() < 0.5 else motif.translate(_COMPLEMENT)[::-1]
                start = int(rng.integers(0, length - len(site) + 1))
                bases[start : start + len(site)] = list(site)
        seq = "".join(bases)
        for k, name in enumerate(WEIGHTS):  # count what is there (overwrites may break or create sites)
            motif = MOTIFS[name]
            rc = motif.translate(_COMPLEMENT)[::-1]
            counts[i, k] = seq.count(motif) + (seq.count(rc) if rc != motif else 0)
        seqs.append(seq)
    activity = counts @ np.array(list(WEIGHTS.values())) + rng.normal(0, noise, n)
    if as_counts:
        activity = rng.poisson(np.exp(0.5 * activity)).astype(np.float64)
    return seqs, activity.astype(np.float32), counts


@TASKS.decorator("activity.synthetic", "MPRA-style activity = weighted motif counts + noise (regression, synthetic)")
def activity_task(**options: Any) -> SplitTask:
    table = Settings({"n": Setting(2000, ge=50), "length": Setting(300, ge=60, le=10_000),
                      "noise": Setting(0.3, ge=0), "counts": Setting(False), "seed": Setting(0, ge=0)})  # fmt: skip
    opts = merge("data", table, options)

    def load() -> dict[str, SeqDataset]:
        seqs, activity, _ = generate(opts["n"], opts["length"], opts["noise"], opts["seed"], opts["counts"])
        data = SeqDataset((Seqs.from_strings(seqs, pad_to=opts["length"]),), activity,
                          np.array([f"act{i}" for i in range(opts["n"])]))  # fmt: skip
        order = np.random.default_rng(opts["seed"] + 1).permutation(opts["n"])
        cut = [int(0.8 * opts["n"]), int(0.9 * opts["n"])]
        parts = np.split(order, cut)
        return {name: data.subset(np.sort(idx)) for name, idx in zip(("train", "val", "test"), parts, strict=True)}

    return SplitTask(
        name="activity.synthetic",
        io=IOSpec("seq", (opts["length"],), 1, "regression", ("activity",)),
        primary_metric=PRIMARY,
        split_protocol=f"random_train0.8_val0.1_test0.1_seed{opts['seed']}",
        synthetic=True,
        load=load,
        metric_fn=regression_metrics,
        description="synthetic activity: weighted motif counts + Gaussian noise",
    )
