"""`epi.targetfinder_nhek`: TargetFinder's NHEK feature table (binary, primary metric AUPRC) for feature baselines.

Features: every column whose name ends in ` (enhancer)`, ` (promoter)` or ` (window)` — TargetFinder's E/P/W peak
features. `$REGBENCH_DATA/targetfinder/NHEK_training.csv.gz` holds 20 enhancer and 20 promoter columns (CTCF,
DNase-seq, EZH2, FAIRE-seq, GRHL3, H2AZ, H3K27ac, H3K27me3, H3K36me3, H3K4me1, H3K4me2, H3K4me3, H3K79me2, H3K9ac,
H3K9me1, H3K9me3, H4K20me1, POLR2A, WDR5, CAGE) and no window columns, so this is the E/P set (40 features).
Distance, bin and window counts are not used. Splits: as `epi.*` (`data.split=chromosome` default, or `random`).
The audit adds near-duplicate windows from the pair coordinates (`epi.nhek`'s default 3,000 / 2,000 bp windows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.config import merge
from harness.data.datasets import FeatureDataset
from harness.data.split_task import splits_digest
from harness.evaluation.metrics import binary_metrics
from harness.paths import require_data
from harness.plugins import TASKS
from harness.spec import IOSpec, Task
from tasks._epi_splits import SPLITS, dedupe_pairs, leakage_lines, split_pairs, split_settings, window_overlap_lines
from tasks._targetfinder_pairs import Elements, PairTableError, parse_name

SUFFIXES = (" (enhancer)", " (promoter)", " (window)")
REQUIRED = ("enhancer_name", "promoter_name", "enhancer_chrom", "label")
RELATIVE = "targetfinder/NHEK_training.csv.gz"
WINDOWS = (3000, 2000)  # the audit's near-duplicate windows: `epi.nhek`'s default enhancer and promoter windows


@dataclass(frozen=True)
class FeatureTable:
    """The parsed table: features `(N, D)` float32, feature names, labels, chromosomes and pair names."""

    features: np.ndarray
    columns: tuple[str, ...]
    labels: np.ndarray
    chrom: np.ndarray
    pairs: list[tuple[str, str]]

    @property
    def ids(self) -> np.ndarray:
        return np.asarray([f"{e}::{p}" for e, p in self.pairs])

    def elements(self) -> tuple[Elements, Elements]:
        """The enhancers and promoters of the pairs, from their `CELL|chrN:start-end` names."""
        out = []
        for side in (0, 1):
            names = [pair[side] for pair in self.pairs]
            parsed = [parse_name(name, f"pair {i + 1}") for i, name in enumerate(names)]
            chrom, start, end = (np.asarray(col) for col in zip(*parsed, strict=True))
            out.append(Elements(np.asarray(names), chrom, start.astype(np.int64), end.astype(np.int64)))
        return out[0], out[1]


def read_feature_table(path: Path) -> FeatureTable:
    """Read a TargetFinder training table; duplicate pairs are dropped (all copies when their labels differ)."""
    frame = pd.read_csv(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise PairTableError(f"{path}:1: missing column(s) {', '.join(missing)}")
    columns = tuple(c for c in frame.columns if c.endswith(SUFFIXES))
    if not columns:
        raise PairTableError(f"{path}:1: no feature columns ending in {', '.join(s.strip() for s in SUFFIXES)}")
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        row, col = bad[0]
        raise PairTableError(f"{path}:{row + 2}: column {columns[col]!r} has non-numeric value "
                             f"{frame[columns[col]].iloc[row]!r}")  # fmt: skip
    labels = frame["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(labels, (0, 1)))[0])
        raise PairTableError(f"{path}:{row + 2}: bad label {labels[row]!r} (expected 0 or 1)")
    pairs = list(zip(frame["enhancer_name"].astype(str), frame["promoter_name"].astype(str), strict=True))
    keep = dedupe_pairs(pairs, labels)
    return FeatureTable(
        values[keep].astype(np.float32),
        columns,
        labels[keep].astype(np.int8),
        frame["enhancer_chrom"].astype(str).to_numpy()[keep],
        [pairs[i] for i in keep],
    )


@dataclass
class FeatureTask(Task):
    """A feature-table task: `FeatureDataset` splits; `audit_lines` reports pair leakage under both protocols."""

    name: str
    io: IOSpec
    split_protocol: str
    opts: dict[str, Any]
    synthetic: bool = False
    primary_metric: str = "auprc"
    description: str = "TargetFinder NHEK E/P peak features"
    _table: FeatureTable | None = field(default=None, repr=False)
    _splits: dict[str, FeatureDataset] | None = field(default=None, repr=False)

    def table(self) -> FeatureTable:
        if self._table is None:
            self._table = read_feature_table(require_data(RELATIVE, self.name))
        return self._table

    def pair_splits(self, protocol: str | None = None) -> dict[str, np.ndarray]:
        t, o = self.table(), self.opts
        return split_pairs(protocol or o["split"], t.chrom, t.labels, o["val_fraction"], o["test_fraction"], o["seed"])

    def splits(self) -> Mapping[str, FeatureDataset]:
        if self._splits is None:
            t, ids = self.table(), self.table().ids
            self._splits = {
                name: FeatureDataset(t.features[rows], t.labels[rows].astype(np.float32), ids[rows])
                for name, rows in self.pair_splits().items()
            }
        return self._splits

    def audit_lines(self) -> list[str]:
        t = self.table()
        lines = [f"features ({len(t.columns)}): {', '.join(t.columns)}"]
        for protocol in ("chromosome", "random"):
            idx = self.pair_splits(protocol)
            lines.append(f"pair leakage, data.split={protocol}: " + ", ".join(f"{s}={len(idx[s])}" for s in SPLITS))
            lines.extend(leakage_lines(t.pairs, t.labels, idx))
            lines.extend(window_overlap_lines(*t.elements(), idx, WINDOWS))
        return lines

    def metrics(self, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
        return binary_metrics(y_true, y_score)

    def digest(self) -> str:
        return splits_digest(self.splits())


@TASKS.decorator("epi.targetfinder_nhek", "TargetFinder NHEK enhancer/promoter peak features (feature baselines)")
def targetfinder_nhek(**options: Any) -> FeatureTask:
    opts = merge("data", split_settings(), options)
    io = IOSpec("features", (0,), 1, "binary", ("interaction",))
    return FeatureTask("epi.targetfinder_nhek", io, opts["split"], opts)
