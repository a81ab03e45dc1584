"""Seeded splitting and cross-split duplicate audits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from harness.data.datasets import SeqDataset


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices `(keep, holdout)`: a seeded, label-stratified `fraction` held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    idx = np.arange(len(labels))
    strat = labels if labels.ndim == 1 else None
    keep, hold = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strat)
    return np.sort(keep), np.sort(hold)


@dataclass(frozen=True)
class DuplicateReport:
    """Exact duplicate sequences (either strand) within and across splits."""

    within: dict[str, int]  # split → rows whose sequence appears earlier in the same split
    across: dict[tuple[str, str], list[tuple[str, str]]]  # (split_a, split_b) → [(id_a, id_b), ...]

    def lines(self) -> list[str]:
        out = [f"within {name}: {n} duplicate rows" for name, n in self.within.items()]
        for (a, b), pairs in self.across.items():
            out.append(f"{a} ∩ {b}: {len(pairs)} shared sequences")
            out.extend(f"  {ia}  ==  {ib}" for ia, ib in pairs[:20])
            if len(pairs) > 20:
                out.append(f"  … and {len(pairs) - 20} more")
        return out

    @property
    def n_across(self) -> int:
        return sum(len(p) for p in self.across.values())


def duplicate_report(splits: Mapping[str, SeqDataset]) -> DuplicateReport:
    """Find exact duplicates (a sequence or its reverse complement; all branches together for pairs)."""
    keys: dict[str, list[bytes]] = {}
    for name, ds in splits.items():
        per_branch = [branch.canonical_digests() for branch in ds.seqs]
        keys[name] = [b"".join(parts) for parts in zip(*per_branch, strict=True)]
    within = {name: len(k) - len(set(k)) for name, k in keys.items()}
    names = list(splits)
    across: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for i, a in enumerate(names):
        first_a = {key: row for row, key in reversed(list(enumerate(keys[a])))}
        for b in names[i + 1 :]:
            pairs = [
                (str(splits[a].ids[first_a[key]]), str(splits[b].ids[row]))
                for row, key in enumerate(keys[b])
                if key in first_a
            ]
            across[(a, b)] = pairs
    return DuplicateReport(within, across)
