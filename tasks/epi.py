"""Enhancer–promoter interaction (EPI) tasks on TargetFinder pair tables (binary, primary metric AUPRC).

Registered: `epi.gm12878`, `epi.hela_s3`, `epi.huvec`, `epi.imr90`, `epi.k562`, `epi.nhek` (the six cell lines of
SPEID / EPSAT; pairs from `$REGBENCH_DATA/targetfinder/<CELL>_pairs.csv.gz`, sequences cut from the hg19 FASTA given
as `data.genome`) and `epi.synthetic` (a generated genome and pair table in the same formats, see
`tasks._synthetic_epi`).

Pipeline: parse the table → drop duplicate pairs (same enhancer and promoter window; copies with both labels are
dropped) → split pairs (`data.split=chromosome` default, or `random`; `tasks._epi_splits`) → cut windows centred on each
element (`data.enhancer_window`, `data.promoter_window`; + strand, N-padded; `tasks._genome`) → drop val/test pairs
whose two sequences equal an earlier split's (so no sequence pair is in two splits) → optionally add shifted copies
of the training positives (`data.augment=shift`, `data.shifts=K`, after SPEID): each copy moves the enhancer and
promoter windows by a distinct random offset (not both 0) that keeps the element inside the window when it fits;
copies identical to any existing pair are dropped. Val and test are never augmented.

`data.split=cv` (`data.folds=K`, default 5): the pairs left after the duplicate drops (here pairs whose two windows
equal an earlier pair's are dropped before splitting, so the test folds partition the pairs) are dealt into K folds of
whole chromosomes (`harness.data.splits.fold_indices`), validation whole chromosomes from each fold's training part;
each fold's training positives are augmented as above. `data.dedup` is `exact` only here: near-duplicate windows
(overlap >= 2/3, from coordinates) are reported by `regbench audit`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Setting, merge
from harness.data.datasets import SeqDataset, Seqs, concat
from harness.data.split_task import splits_digest
from harness.data.splits import CvTask, check_protocol_options, cv_protocol, fold_indices
from harness.evaluation.metrics import binary_metrics
from harness.paths import cache_dir, require_data
from harness.plugins import TASKS
from harness.spec import IOSpec, Task
from tasks._epi_splits import SPLITS, dedupe_pairs, leakage_lines, split_pairs, split_settings, window_overlap_lines
from tasks._genome import cached_windows, cut_windows, require_genome, window_starts
from tasks._synthetic_epi import VERSION, generate
from tasks._targetfinder_pairs import Elements, PairTable, read_pairs

CELLS = {"gm12878": "GM12878", "hela_s3": "HeLa-S3", "huvec": "HUVEC", "imr90": "IMR90", "k562": "K562", "nhek": "NHEK"}
COMMON = {"augment": Setting("none", choices=("none", "shift")), "shifts": Setting(0, ge=0, le=1000)}
PATH = Setting("", accepts="a path")
PRIMARY = "auprc"


@dataclass
class EpiTask(Task):
    """An EPI task: pair-level splits from the table alone (`pair_splits`, `audit_lines`), sequences on `splits()`;
    under `data.split=cv` the folds on `fold_splits()` (the task handed out is a `CvTask` over them)."""

    name: str
    io: IOSpec
    split_protocol: str
    synthetic: bool
    opts: dict[str, Any]
    pair_table: Callable[[], Path]
    genome: Callable[[], Path]
    description: str = ""
    primary_metric: str = PRIMARY
    _splits: dict[str, SeqDataset] | None = field(default=None, repr=False)

    def table(self) -> PairTable:
        """The pair table without duplicate pairs (same enhancer and promoter windows)."""
        table = read_pairs(self.pair_table())
        we, wp = self.io.lengths
        keys = list(
            zip(table.enhancers.chrom, window_starts(table.enhancers.mid, we), table.promoters.chrom,
                window_starts(table.promoters.mid, wp), strict=True)
        )  # fmt: skip
        return table.subset(dedupe_pairs(keys, table.labels))

    def pair_splits(self, protocol: str | None = None) -> tuple[PairTable, dict[str, np.ndarray]]:
        """The deduplicated table and row indices per split (no genome needed)."""
        table = self.table()
        cross = np.flatnonzero(table.enhancers.chrom != table.promoters.chrom)
        if cross.size and (protocol or self.opts["split"]) == "chromosome":
            raise ValueError(f"{table.where(int(cross[0]))}: enhancer and promoter lie on different chromosomes; "
                             "a chromosome split needs intra-chromosomal pairs (use data.split=random)")  # fmt: skip
        o = self.opts
        idx = split_pairs(protocol or o["split"], table.enhancers.chrom, table.labels, o["val_fraction"],
                          o["test_fraction"], o["seed"])  # fmt: skip
        return table, idx

    def audit_lines(self) -> list[str]:
        """Pair-level leakage (shared enhancers / promoters) under both split protocols."""
        lines = []
        for protocol in ("chromosome", "random"):
            table, idx = self.pair_splits(protocol)
            pairs = list(zip(table.enhancers.names, table.promoters.names, strict=True))
            sizes = ", ".join(f"{s}={len(idx[s])} ({table.labels[idx[s]].mean():.1%} positive)" for s in SPLITS)
            lines.append(f"pair leakage, data.split={protocol}: {sizes}")
            lines.extend(leakage_lines(pairs, table.labels, idx))
            lines.extend(window_overlap_lines(table.enhancers, table.promoters, idx, self.io.lengths))
        return lines

    def splits(self) -> Mapping[str, SeqDataset]:
        if self._splits is None:
            self._splits = self._load()
        return self._splits

    def metrics(self, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
        return binary_metrics(y_true, y_score)

    def digest(self) -> str:
        return splits_digest(self.splits())

    def fold_splits(self) -> list[dict[str, SeqDataset]]:
        """`data.split=cv`: per fold `{"train", "val", "test"}`, whole chromosomes per test fold and per validation
        set (`harness.data.splits.fold_indices`). Pairs whose two windows equal an earlier pair's are dropped before
        the folds are dealt, so the test folds partition the pairs; then each fold's training positives are augmented
        as `splits()` does."""
        table = self.table()
        cross = np.flatnonzero(table.enhancers.chrom != table.promoters.chrom)
        if cross.size:
            raise ValueError(f"{table.where(int(cross[0]))}: enhancer and promoter lie on different chromosomes; "
                             "a chromosome-grouped CV needs intra-chromosomal pairs")  # fmt: skip
        windows = self._windows(table)
        first: dict[bytes, int] = {}
        for row, key in enumerate(windows[2]):
            first.setdefault(key, row)
        keep = np.asarray(sorted(first.values()), dtype=np.int64)
        table = table.subset(keep)
        windows = (windows[0].subset(keep), windows[1].subset(keep), [windows[2][r] for r in keep])
        o = self.opts
        folds = fold_indices(table.labels, o["folds"], o["val_fraction"], o["seed"], groups=table.enhancers.chrom)
        return [self._assemble(table, windows, fold) for fold in folds]

    def _windows(self, table: PairTable) -> tuple[Seqs, Seqs, list[bytes]]:
        """Enhancer and promoter windows of every row, and a key per row over both (same for reverse complements)."""
        genome = self.genome()
        we, wp = self.io.lengths
        e_seqs, e_keys = element_windows(genome, table, table.enhancers, we, "enhancer")
        p_seqs, p_keys = element_windows(genome, table, table.promoters, wp, "promoter")
        return e_seqs, p_seqs, [e + p for e, p in zip(e_keys, p_keys, strict=True)]

    def _load(self) -> dict[str, SeqDataset]:
        table, idx = self.pair_splits()
        return self._assemble(table, self._windows(table), idx)

    def _assemble(
        self, table: PairTable, windows: tuple[Seqs, Seqs, list[bytes]], idx: Mapping[str, np.ndarray]
    ) -> dict[str, SeqDataset]:
        """The split datasets of rows `idx`: val/test rows whose sequences an earlier split holds are dropped, then the
        training positives are augmented (`data.augment=shift`)."""
        e_seqs, p_seqs, keys = windows
        labels, ids = table.labels.astype(np.float32), table.ids
        out: dict[str, SeqDataset] = {}
        seen: set[bytes] = set()
        for name in SPLITS:
            rows = np.asarray([r for r in idx[name] if keys[r] not in seen], dtype=np.int64)
            seen.update(keys[r] for r in idx[name])
            out[name] = SeqDataset((e_seqs.subset(rows), p_seqs.subset(rows)), labels[rows], ids[rows])
        if self.opts["augment"] == "shift":
            widths = (self.io.lengths[0], self.io.lengths[1])
            extra = shifted_positives(
                self.genome(), table, idx["train"], widths, self.opts["shifts"], self.opts["seed"], seen
            )
            out["train"] = concat([out["train"], extra])
        return out


def element_windows(
    genome: Path, table: PairTable, elements: Elements, width: int, role: str
) -> tuple[Seqs, list[bytes]]:
    """Per pair row, the window around its `role` element, and a content key (same for a window and its RC)."""
    starts = window_starts(elements.mid, width)
    keys = np.char.add(np.char.add(elements.chrom.astype(str), ":"), starts.astype(str))
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    where = [f"{role} of {table.where(int(r))}" for r in first]
    unique = cached_windows(genome, elements.chrom[first], starts[first], width, where, f"{table.digest()}:{role}")
    digests = unique.canonical_digests()
    return unique.subset(inverse), [digests[i] for i in inverse]


def shift_offsets(rng: np.random.Generator, bounds: tuple[int, int], k: int) -> np.ndarray:
    """Up to `k` distinct `(enhancer, promoter)` offsets in `[-b, b]` each, never `(0, 0)`: `(k, 2)` int64."""
    span = (2 * bounds[0] + 1, 2 * bounds[1] + 1)
    cells = span[0] * span[1]
    draws = rng.choice(cells - 1, size=min(k, cells - 1), replace=False)
    draws = draws + (draws >= cells // 2)  # skip the grid centre, offset (0, 0)
    return np.stack([draws // span[1] - bounds[0], draws % span[1] - bounds[1]], axis=1).astype(np.int64)


def shifted_positives(
    genome: Path, table: PairTable, train: np.ndarray, widths: tuple[int, int], k: int, seed: int, seen: set[bytes]
) -> SeqDataset:
    """`k` shifted copies of each training positive (see the module docstring); copies whose sequences are in `seen`
    (any existing pair, or an earlier copy) are dropped. The shift bound keeps the element inside its window."""
    rng = np.random.default_rng(seed)
    rows, offsets = [], []
    for r in train[table.labels[train] == 1]:
        sizes = (table.enhancers.end[r] - table.enhancers.start[r], table.promoters.end[r] - table.promoters.start[r])
        bounds = (max(1, (widths[0] - int(sizes[0])) // 2), max(1, (widths[1] - int(sizes[1])) // 2))
        shifts = shift_offsets(rng, bounds, k)
        rows.extend([r] * len(shifts))
        offsets.append(shifts)
    rows_arr = np.asarray(rows, dtype=np.int64)
    off = np.concatenate(offsets) if offsets else np.zeros((0, 2), dtype=np.int64)
    where = [f"shifted copy of {table.where(int(r))}" for r in rows_arr]
    branches = [
        cut_windows(genome, el.chrom[rows_arr], window_starts(el.mid[rows_arr], w) + off[:, i], w, where)
        for i, (el, w) in enumerate(zip((table.enhancers, table.promoters), widths, strict=True))
    ]
    keys = [a + b for a, b in zip(*(b.canonical_digests() for b in branches), strict=True)]
    keep = []
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    keep_arr = np.asarray(keep, dtype=np.int64)
    ids = np.asarray([f"{table.ids[r]}@shift{oe:+d},{op:+d}" for r, (oe, op) in zip(rows_arr, off, strict=True)])
    return SeqDataset(
        tuple(b.subset(keep_arr) for b in branches), np.ones(len(keep_arr), dtype=np.float32), ids[keep_arr]
    )


def _shift_needs_shifts(opts: Mapping[str, Any]) -> str | None:
    if (opts["augment"] == "shift") != (opts["shifts"] >= 1):
        return (f"data.augment=shift needs data.shifts >= 1 (and shifts needs augment=shift), got "
                f"data.augment={opts['augment']!r}, data.shifts={opts['shifts']!r}")  # fmt: skip
    return None


def _options(task: str, declared: dict[str, Setting], options: Mapping[str, Any]) -> dict[str, Any]:
    """The task's `data.*` options (split settings with cross-validation, COMMON, `declared`), each checked
    against its range, and the settings that only apply to one split protocol refused under the other."""
    opts = merge("data", split_settings((_shift_needs_shifts,), cv=True, **COMMON, **declared), options)
    check_protocol_options(task, opts, options)
    return opts


def _windows(enhancer: int, promoter: int) -> dict[str, Setting]:
    return {"enhancer_window": Setting(enhancer, ge=10, le=1_000_000),
            "promoter_window": Setting(promoter, ge=10, le=1_000_000)}  # fmt: skip


def _make(
    name: str, opts: dict[str, Any], table: Callable[[], Path], genome: Callable[[], Path], synthetic: bool, about: str
) -> Task:
    io = IOSpec("seq_pair", (opts["enhancer_window"], opts["promoter_window"]), 1, "binary", ("interaction",))
    task = EpiTask(name, io, opts["split"], synthetic, opts, table, genome, description=about)
    if opts["split"] != "cv":
        return task
    protocol = cv_protocol(opts["folds"], "chromosome", opts["val_fraction"], opts["seed"])
    return CvTask(name, io, PRIMARY, protocol, synthetic, opts["folds"], task.fold_splits, binary_metrics,
                  description=about, audit=task.audit_lines)  # fmt: skip


def _cell_factory(key: str) -> Callable[..., Task]:
    cell = CELLS[key]

    def factory(**options: Any) -> Task:
        opts = _options(f"epi.{key}", {"genome": PATH, **_windows(3000, 2000)}, options)
        return _make(
            f"epi.{key}",
            opts,
            lambda: require_data(f"targetfinder/{cell}_pairs.csv.gz", f"epi.{key} pair table"),
            lambda: require_genome(opts["genome"]),
            synthetic=False,
            about=f"TargetFinder {cell} enhancer–promoter pairs, hg19 windows",
        )

    return factory


for _key, _cell in CELLS.items():
    TASKS.register(f"epi.{_key}", _cell_factory(_key), f"TargetFinder {_cell} EPI pairs (needs data.genome=hg19.fa)")


@TASKS.decorator("epi.synthetic", "synthetic genome + TargetFinder-format pair table, motif-pair interactions")
def synthetic_task(**options: Any) -> Task:
    opts = _options("epi.synthetic", {"dir": PATH, **_windows(500, 300)}, options)
    folder = (
        Path(opts["dir"]).expanduser() if opts["dir"] else cache_dir() / f"epi_synthetic_v{VERSION}_s{opts['seed']}"
    )
    return _make(
        "epi.synthetic",
        opts,
        lambda: generate(folder, opts["seed"])[1],
        lambda: generate(folder, opts["seed"])[0],
        synthetic=True,
        about=f"synthetic EPI pairs and genome in {folder}",
    )
