"""Pair-level splits of enhancer–promoter tables, and the leakage audit between them.

Protocols:
- `chromosome` (default): whole chromosomes go to train/val/test. A greedy pass visits chromosomes in some order
  and gives each to the split whose share of pairs and of positives is furthest below its target (`1 - val - test`,
  `val`, `test`). Of 200 orders (largest chromosome first, then 199 seeded shuffles), the assignment whose pair
  shares and positive rates deviate least from the targets wins. Nothing — no pair, element or window — can occur
  in two splits.
- `random`: the literature's split (SPEID, EPSAT, TargetFinder CV), stratified by label, seeded. Pairs are
  disjoint, but enhancers and promoters recur across splits (most positives share a promoter): it leaks.

Both run on coordinates alone (no genome), after `dedupe_pairs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.config import ConfigError, Rule, Setting, Settings
from harness.data.near_duplicates import coordinate_near_duplicates
from harness.data.splits import stratified_holdout
from tasks._targetfinder_pairs import Elements

PROTOCOLS = ("chromosome", "random")
SPLITS = ("train", "val", "test")


def dedupe_pairs(keys: Sequence[tuple], labels: np.ndarray) -> np.ndarray:
    """Rows to keep: the first row of each distinct key; every copy of a key seen with both labels is dropped."""
    first: dict[tuple, int] = {}
    conflicted: set[tuple] = set()
    for row, key in enumerate(keys):
        if key not in first:
            first[key] = row
        elif labels[first[key]] != labels[row]:
            conflicted.add(key)
    return np.asarray(sorted(row for key, row in first.items() if key not in conflicted), dtype=np.int64)


def chromosome_split(
    chrom: np.ndarray, labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int, tries: int = 200
) -> dict[str, np.ndarray]:
    """Whole chromosomes per split (see the module docstring); sorted row indices per split."""
    names, inverse, counts = np.unique(chrom, return_inverse=True, return_counts=True)
    if len(names) < 3:
        raise ValueError(f"a chromosome split needs at least 3 chromosomes, found {list(names)}")
    positives = np.bincount(inverse, weights=labels, minlength=len(names))
    targets = np.array([1.0 - val_fraction - test_fraction, val_fraction, test_fraction])
    rng = np.random.default_rng(seed)
    orders = [np.argsort(-counts, kind="stable")] + [rng.permutation(len(names)) for _ in range(tries - 1)]
    best = min((_greedy(order, counts, positives, targets) for order in orders), key=lambda r: r[0])
    return {name: np.flatnonzero(best[1][inverse] == i) for i, name in enumerate(SPLITS)}


def _greedy(
    order: np.ndarray, counts: np.ndarray, positives: np.ndarray, targets: np.ndarray
) -> tuple[float, np.ndarray]:
    """Visit chromosomes in `order`, each to the split furthest below its pair and positive targets; `(cost, split
    per chromosome)`, cost = Σ relative deviation of each split's pair share and positive rate from the targets."""
    n, pos = np.zeros(3), np.zeros(3)
    total_n, total_pos = counts.sum(), max(positives.sum(), 1.0)
    assign = np.empty(len(counts), dtype=np.int64)
    for c in order:  # an empty split has the largest possible deficit (2), so each split gets a chromosome
        split = int(np.argmax((targets - n / total_n) / targets + (targets - pos / total_pos) / targets))
        assign[c] = split
        n[split] += counts[c]
        pos[split] += positives[c]
    rate = total_pos / total_n
    cost = np.abs(n / total_n - targets).sum() / targets.min() + np.abs(pos / np.maximum(n, 1) - rate).sum() / rate
    return float(cost), assign


def random_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Stratified, seeded train/val/test row indices (val is `val_fraction` of all rows)."""
    rest, test = stratified_holdout(labels, test_fraction, seed)
    keep, val = stratified_holdout(labels[rest], val_fraction / (1.0 - test_fraction), seed)
    return {"train": rest[keep], "val": rest[val], "test": test}


def fractions_fit(opts: Mapping[str, Any]) -> str | None:
    """A `Settings` rule: validation and test fractions leave rows to train on."""
    if opts["val_fraction"] + opts["test_fraction"] >= 1:
        return f"data.val_fraction={opts['val_fraction']} + data.test_fraction={opts['test_fraction']} must be < 1"
    return None


def split_settings(rules: Sequence[Rule] = (), cv: bool = False, **extra: Setting) -> Settings:
    """The `data.*` options of a pair-split task (split protocol, fractions, seed; with `cv` also `split=cv`,
    `folds`, and `dedup`, exact only) plus `extra` and `rules`."""
    folds = {
        "folds": Setting(5, ge=2, le=100),
        "dedup": Setting(
            "exact",
            choices=("exact",),
            accepts="exact (near-duplicate windows of pair tasks are reported by `regbench audit`)",
        ),
    }
    return Settings({"split": Setting("chromosome", choices=(*PROTOCOLS, "cv") if cv else PROTOCOLS),
                     "val_fraction": Setting(0.1, gt=0, lt=1), "test_fraction": Setting(0.1, gt=0, lt=1),
                     "seed": Setting(0, ge=0), **(folds if cv else {}), **extra},
                    rules=(fractions_fit, *rules))  # fmt: skip


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"data.split={protocol!r}: use one of {', '.join(PROTOCOLS)}")


def split_pairs(
    protocol: str, chrom: np.ndarray, labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices per split under `protocol` (chromosome or random)."""
    check_protocol(protocol)
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"data.val_fraction={val_fraction!r}, data.test_fraction={test_fraction!r}: each must be in (0, 1) "
            "and their sum < 1"
        )
    if protocol == "chromosome":
        return chromosome_split(chrom, labels, val_fraction, test_fraction, seed)
    return random_split(labels, val_fraction, test_fraction, seed)


def pair_leakage(pairs_train: Sequence[tuple[str, str]], pairs_test: Sequence[tuple[str, str]]) -> dict[str, float]:
    """How many test `(enhancer, promoter)` pairs share the pair, the enhancer or the promoter with a train pair."""
    train_e = {e for e, _ in pairs_train}
    train_p = {p for _, p in pairs_train}
    train_pairs = set(map(tuple, pairs_train))
    n = len(pairs_test)
    shared_e = sum(e in train_e for e, _ in pairs_test)
    shared_p = sum(p in train_p for _, p in pairs_test)
    either = sum(e in train_e or p in train_p for e, p in pairs_test)
    return {
        "test_pairs": n,
        "shared_pair": sum(tuple(pair) in train_pairs for pair in pairs_test),
        "shared_enhancer": shared_e,
        "shared_promoter": shared_p,
        "shared_either": either,
        "fraction_either": either / n if n else float("nan"),
    }


def leakage_lines(pairs: Sequence[tuple[str, str]], labels: np.ndarray, splits: dict[str, np.ndarray]) -> list[str]:
    """Audit lines: pair leakage from train into val and test, over all pairs and over positive pairs only."""
    lines = []
    for target in ("val", "test"):
        for what, mask in (("all", np.ones(len(labels), bool)), ("positive", labels == 1)):
            train = [pairs[i] for i in splits["train"] if mask[i]]
            other = [pairs[i] for i in splits[target] if mask[i]]
            r = pair_leakage(train, other)
            lines.append(
                f"  train → {target} ({what} pairs, {r['test_pairs']}): shared pair {r['shared_pair']}, "
                f"enhancer {r['shared_enhancer']}, promoter {r['shared_promoter']}, "
                f"either {r['shared_either']} ({r['fraction_either']:.1%})"
            )
    return lines


def window_overlap_lines(e: Elements, p: Elements, idx: Mapping[str, np.ndarray], widths: Sequence[int]) -> list[str]:
    """Near-duplicate windows from coordinates alone (no genome): val/test rows whose enhancer window (`widths[0]` bp
    around the element's midpoint), promoter window, or both windows of one training pair, overlap a training
    window by >= 2/3 (`harness.data.near_duplicates.coordinate_near_duplicates`); per row `e`, `p`."""
    mids = np.stack([e.mid, p.mid], axis=1)
    chroms = {"enhancer": (e.chrom, [0]), "promoter": (p.chrom, [1]),
              "pair": (np.char.add(np.char.add(e.chrom.astype(str), "|"), p.chrom.astype(str)), [0, 1])}  # fmt: skip
    lines = []
    for target in ("val", "test"):
        tr, other = idx["train"], idx[target]
        parts = []
        for what, (chrom, cols) in chroms.items():
            near = coordinate_near_duplicates(chrom[tr], mids[tr][:, cols], chrom[other], mids[other][:, cols],
                                              [widths[c] for c in cols])  # fmt: skip
            parts.append(f"{what} {int(near.sum())} ({near.mean() if len(near) else float('nan'):.1%})")
        where = f"  near-duplicate windows train → {target} (overlap >= 2/3, from coordinates): "
        lines.append(where + ", ".join(parts))
    return lines
