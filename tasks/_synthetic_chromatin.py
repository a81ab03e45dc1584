"""Synthetic chromatin profiles written in the real DeepSEA and Basset file formats.

Twelve DeepSEA-style labels (4 DNase, 5 TF, 3 histone; names `Cell_Mark_Treatment`) are driven by six motifs
planted into GC-matched random background, each independently in 3% of sequences on a random strand, plus an
"enhancer" pair (AP-1 with ETS) and a "promoter" pair (NF-Y with E-box) planted together in 3% and 2%:

- TF labels: one motif each (CTCF, GATA, ETS, AP-1, E-box);
- DNase labels: any of a cell type's motifs (e.g. K562: GATA, AP-1 or CTCF), so they correlate with the TF labels;
- histone labels: motif combinations (H3K27ac: AP-1 and ETS; H3K4me3: NF-Y and E-box; H3K9ac: NF-Y and CTCF —
  never planted together, so its positives come from chance co-occurrence and it may have none in a split).

Observed labels keep a true positive with probability 0.9 and add false positives at rate 0.005, so positives
are 1–12% per label (H3K9ac the rarest). `write_synthetic` writes the data as the real readers expect it (see
`chromatin_formats`); `write_synthetic_streamed` writes sets too large for memory block by block (for benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tasks._chromatin_formats import (
    DEEPSEA_SPLITS,
    Pair,
    write_basset,
    write_basset_streamed,
    write_deepsea_bundle,
    write_deepsea_train_streamed,
)

MOTIFS = {  # consensus sites (degenerate letters resolved to one site)
    "CTCF": "CCGCGAGGGGGCAG",
    "GATA": "AGATAAGA",
    "ETS": "CCGGAAGT",
    "AP-1": "TGACTCA",
    "E-box": "CACGTG",
    "NF-Y": "CCAATCA",
}
PAIRS = {"enhancer": (("AP-1", "ETS"), 0.03), "promoter": (("NF-Y", "E-box"), 0.02)}
MOTIF_RATE = 0.03
LABELS: dict[str, tuple[str, tuple[str, ...]]] = {  # name → (rule: any | all, motifs)
    "K562_DNase_None": ("any", ("GATA", "AP-1", "CTCF")),
    "GM12878_DNase_None": ("any", ("ETS", "CTCF")),
    "HepG2_DNase_None": ("any", ("NF-Y", "E-box")),
    "HeLa-S3_DNase_None": ("any", ("AP-1", "NF-Y")),
    "GM12878_CTCF_None": ("any", ("CTCF",)),
    "K562_GATA-1_None": ("any", ("GATA",)),
    "GM12878_ELF1_None": ("any", ("ETS",)),
    "HeLa-S3_c-Jun_None": ("any", ("AP-1",)),
    "HepG2_USF-1_None": ("any", ("E-box",)),
    "HeLa-S3_H3K27ac_None": ("all", ("AP-1", "ETS")),
    "HepG2_H3K4me3_None": ("all", ("NF-Y", "E-box")),
    "K562_H3K9ac_None": ("all", ("NF-Y", "CTCF")),
}
GROUP_SIZES = {"dnase": 4, "tf": 5, "histone": 3}  # consecutive blocks of LABELS, as in DeepSEA's 919
SENSITIVITY, FALSE_POSITIVE_RATE = 0.9, 0.005
GC_MEAN, GC_SD = 0.42, 0.05
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
STREAM_BLOCK = 10_000  # rows generated at a time by `blocks`
STREAM_EVAL_ROWS = 2_000  # most rows of the val and test splits `write_synthetic_streamed` writes
_COMPLEMENT = np.array([3, 2, 1, 0], dtype=np.uint8)


def _codes(site: str) -> np.ndarray:
    return np.array(["ACGT".index(c) for c in site], dtype=np.uint8)


def generate(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` sequences of `length` bp → codes `(n, length)` uint8 and labels `(n, 12)` uint8 (columns as LABELS)."""
    longest = max(len(m) for m in MOTIFS.values())
    if length < 4 * longest:
        raise ValueError(f"synthetic chromatin: length {length} is too short; need >= {4 * longest} bp")
    rng = np.random.default_rng(seed)
    gc = np.clip(rng.normal(GC_MEAN, GC_SD, size=(n, 1)), 0.25, 0.65)
    u = rng.random((n, length))
    codes = np.where(u < gc, np.where(u < gc / 2, 1, 2), np.where(u < (1 + gc) / 2, 0, 3)).astype(np.uint8)
    names = list(MOTIFS)
    present = rng.random((n, len(names))) < MOTIF_RATE  # (n, motifs)
    for (a, b), rate in PAIRS.values():
        together = rng.random(n) < rate
        present[together, names.index(a)] = present[together, names.index(b)] = True
    slots = length // longest  # non-overlapping slots, one motif per slot
    for i in np.flatnonzero(present.any(axis=1)):
        chosen = np.flatnonzero(present[i])
        for slot, m in zip(rng.choice(slots, size=len(chosen), replace=False), chosen, strict=True):
            site = _codes(MOTIFS[names[m]])
            if rng.random() < 0.5:
                site = _COMPLEMENT[site[::-1]]
            start = slot * longest + rng.integers(0, longest - len(site) + 1)
            codes[i, start : start + len(site)] = site
    truth = np.stack(
        [
            (np.any if rule == "any" else np.all)(present[:, [names.index(m) for m in motifs]], axis=1)
            for rule, motifs in LABELS.values()
        ],
        axis=1,
    )
    observed = (truth & (rng.random(truth.shape) < SENSITIVITY)) | (rng.random(truth.shape) < FALSE_POSITIVE_RATE)
    return codes, observed.astype(np.uint8)


def split(codes: np.ndarray, labels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Consecutive 80/10/10 train/val/test blocks (rows are already in random order)."""
    n_train = int(SPLIT_FRACTIONS["train"] * len(codes))
    n_val = int(SPLIT_FRACTIONS["val"] * len(codes))
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(codes))}
    return {name: (codes[lo:hi], labels[lo:hi]) for name, (lo, hi) in bounds.items()}


def write_synthetic(target: Path, fmt: str, n: int, length: int, seed: int) -> Path:
    """Generate and write a data set: a DeepSEA bundle folder (`fmt="deepsea"`) or a Basset `.h5` file."""
    splits = split(*generate(n, length, seed))
    if fmt == "deepsea":
        write_deepsea_bundle(target, splits)
    elif fmt == "basset":
        write_basset(target, splits, list(LABELS))
    else:
        raise ValueError(f"synthetic chromatin: format {fmt!r} is not one of deepsea, basset")
    return target


def blocks(n: int, length: int, seed: int, n_labels: int = len(LABELS)) -> Iterator[Pair]:
    """`n` rows as consecutive `generate` blocks of `STREAM_BLOCK` rows (block i seeded by `(seed, i)`), labels
    repeated cyclically to `n_labels` columns (I/O benchmarks at DeepSEA's 919 labels)."""
    columns = np.arange(n_labels) % len(LABELS)
    for i, lo in enumerate(range(0, n, STREAM_BLOCK)):
        block_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        codes, labels = generate(min(STREAM_BLOCK, n - lo), length, block_seed)
        yield codes, labels[:, columns]


def write_synthetic_streamed(target: Path, fmt: str, n: int, length: int, seed: int, n_labels: int) -> Path:
    """Like `write_synthetic`, holding one block in memory: `n` training rows (DeepSEA train.mat as MATLAB v7.3,
    or Basset's `train_in`) and val/test of `min(n // 10, STREAM_EVAL_ROWS)` rows each (seeds `seed + 1`, `+ 2`)."""
    n_eval = max(1, min(n // 10, STREAM_EVAL_ROWS))
    if fmt == "deepsea":
        target.mkdir(parents=True, exist_ok=True)
        write_deepsea_train_streamed(target / DEEPSEA_SPLITS["train"][0], n, length, n_labels,
                                     blocks(n, length, seed, n_labels))  # fmt: skip
        small = {s: next(blocks(n_eval, length, seed + k, n_labels)) for k, s in ((1, "val"), (2, "test"))}
        write_deepsea_bundle(target, small)
    elif fmt == "basset":
        sizes = {"train": (n, seed), "val": (n_eval, seed + 1), "test": (n_eval, seed + 2)}
        splits = {s: (rows, blocks(rows, length, sd, n_labels)) for s, (rows, sd) in sizes.items()}
        write_basset_streamed(target, splits, [f"label{j}" for j in range(n_labels)])
    else:
        raise ValueError(f"synthetic chromatin: format {fmt!r} is not one of deepsea, basset")
    return target
