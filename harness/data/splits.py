"""Seeded splitting (holdout and cross-validation folds), the task type of `data.split=cv`, and cross-split
duplicate audits.

Cross-validation (`data.split=cv`, `data.folds=K`): `fold_indices` deals the rows into K test folds, stratified by
label (scikit-learn `StratifiedKFold`) or, given groups (EPI: the chromosome), with whole groups per fold
(`StratifiedGroupKFold`); both shuffled with `data.seed`. Fold i trains on the other folds, from which its
validation rows are carved as the task's holdout does (stratified `val_fraction` of them; whole groups when grouped).
A quantitative target is stratified on its quantile bins (`strata`).
The test folds partition the rows: the pooled out-of-fold predictions score every example exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from harness.config import ConfigError
from harness.data.datasets import SeqDataset
from harness.spec import Dataset, IOSpec, Task

SPLIT_NAMES = ("train", "val", "test")


def strata(labels: np.ndarray, bins: int = 5) -> np.ndarray:
    """The classes to stratify `(N,)` labels on: the labels themselves (0/1), or for a quantitative target (more than
    two distinct values) their quantile bin, `bins` bins of equal count, so that every split spans its range."""
    if np.unique(labels).size <= 2:
        return labels
    return np.argsort(np.argsort(labels, kind="stable"), kind="stable") * bins // len(labels)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices `(keep, holdout)`: a seeded, label-stratified `fraction` held out (`strata`)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    idx = np.arange(len(labels))
    strat = strata(labels) if labels.ndim == 1 else None
    keep, hold = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strat)
    return np.sort(keep), np.sort(hold)


def check_folds(folds: object) -> int:
    """`data.folds` as an int >= 2, or a ConfigError naming the value."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"data.folds={folds!r}: cross-validation needs an integer number of folds >= 2")
    return folds


def check_protocol_options(task: str, values: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Refuse the `data.*` options given (`given`) that the chosen split protocol (`values["split"]`) ignores:
    `data.test_fraction` under cross-validation (every fold is a test set), `data.folds` without it."""
    if values["split"] == "cv":
        check_folds(values["folds"])
        if "test_fraction" in given:
            raise ConfigError(f"{task}: data.test_fraction does not apply to data.split=cv (every fold is a test set)")
    elif "folds" in given:
        raise ConfigError(f"{task}: data.folds={values['folds']!r} applies to data.split=cv only")


def fold_indices(
    labels: np.ndarray, folds: int, val_fraction: float, seed: int, groups: np.ndarray | None = None
) -> list[dict[str, np.ndarray]]:
    """Per fold, sorted row indices `{"train", "val", "test"}` (see the module docstring); `labels (N,)` binary,
    `groups (N,)` e.g. chromosome names (whole groups per test fold and per validation set)."""
    check_folds(folds)
    rows = np.arange(len(labels))
    if groups is None:
        labels = strata(labels)
        counts = np.bincount(labels.astype(np.int64), minlength=2)
        if counts.min() < folds:
            raise ConfigError(f"data.folds={folds}: needs at least {folds} examples of each class, found {counts}")
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        tests = [test for _, test in splitter.split(rows, labels)]
    else:
        names = np.unique(groups)
        if len(names) < folds + 1:
            raise ConfigError(
                f"data.folds={folds}: a chromosome-grouped CV needs at least {folds + 1} chromosomes (whole ones per "
                f"test fold, and one left to validate on), found {len(names)}: {', '.join(map(str, names))}"
            )
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        tests = [test for _, test in splitter.split(rows, labels, groups)]
    out = []
    for test in tests:
        rest = np.setdiff1d(rows, test)
        if groups is None:
            keep, val = stratified_holdout(labels[rest], val_fraction, seed)
        else:
            keep, val = _group_holdout(labels[rest], groups[rest], val_fraction, seed)
        out.append({"train": rest[keep], "val": rest[val], "test": np.sort(test)})
    return out


def _group_holdout(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(keep, holdout)` with whole groups held out: one fold of a `StratifiedGroupKFold` into round(1 / fraction)
    parts (at most one per group), so about `fraction` of the rows."""
    parts = min(max(2, round(1.0 / fraction)), len(np.unique(groups)))
    keep, hold = next(StratifiedGroupKFold(parts, shuffle=True, random_state=seed).split(labels, labels, groups))
    return np.sort(keep), np.sort(hold)


def splits_digest(splits: Mapping[str, Dataset]) -> str:
    """One content digest over the train/val/test datasets (each has `digest()`)."""
    h = hashlib.sha256()
    for name in SPLIT_NAMES:
        h.update(f"{name}:{splits[name].digest()};".encode())
    return h.hexdigest()[:16]


@dataclass
class FoldTask(Task):
    """Fold `fold` (1-based) of a `CvTask`: that fold's train/val/test under the parent's name, io and metrics."""

    name: str
    io: IOSpec
    primary_metric: str
    split_protocol: str
    synthetic: bool
    fold: int
    datasets: Mapping[str, Dataset]
    metric_fn: Callable[[np.ndarray, np.ndarray], dict[str, float]]

    def splits(self) -> Mapping[str, Dataset]:
        return self.datasets

    def metrics(self, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
        return self.metric_fn(y_true, y_score)

    def digest(self) -> str:
        return splits_digest(self.datasets)


@dataclass
class CvTask(Task):
    """A task under `data.split=cv`: `load_folds()` returns each fold's `{"train", "val", "test"}` datasets (test
    folds partition the task's examples). `fold_tasks()` are the folds as tasks (what each fold run trains on);
    `splits()` is fold 1's (what a study's trials tune on); `digest()` covers every fold."""

    name: str
    io: IOSpec
    primary_metric: str
    split_protocol: str  # e.g. "cv5-stratified_val0.1_seed0"
    synthetic: bool
    folds: int
    load_folds: Callable[[], Sequence[Mapping[str, Dataset]]]
    metric_fn: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    description: str = ""
    audit: Callable[[], list[str]] | None = None
    _folds: list[FoldTask] | None = field(default=None, repr=False)

    def fold_tasks(self) -> list[FoldTask]:
        if self._folds is None:
            loaded = list(self.load_folds())
            if len(loaded) != self.folds:
                raise ValueError(f"task {self.name}: the loader made {len(loaded)} folds, not {self.folds}")
            self._folds = [
                FoldTask(self.name, self.io, self.primary_metric, self.split_protocol, self.synthetic, i + 1,
                         datasets, self.metric_fn)
                for i, datasets in enumerate(loaded)
            ]  # fmt: skip
        return self._folds

    def splits(self) -> Mapping[str, Dataset]:
        return self.fold_tasks()[0].splits()

    def metrics(self, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
        return self.metric_fn(y_true, y_score)

    def digest(self) -> str:
        h = hashlib.sha256(self.split_protocol.encode())
        for fold in self.fold_tasks():
            h.update(f"fold{fold.fold}:{fold.digest()};".encode())
        return h.hexdigest()[:16]

    def audit_lines(self) -> list[str]:
        return self.audit() if self.audit is not None else []


def cv_protocol(folds: int, kind: str, val_fraction: float, seed: int) -> str:
    """The `split_protocol` of a CV task, e.g. `cv5-stratified_val0.1_seed0` (kind: stratified or chromosome)."""
    return f"cv{folds}-{kind}_val{val_fraction:g}_seed{seed}"


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
