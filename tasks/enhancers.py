"""Enhancer and promoter classification tasks (binary, primary metric AUROC).

Registered: `enhancers.ensembl`, `enhancers.cohn`, `promoters.nontata` (Genomic Benchmarks: the package's download,
or with `data.genome=/path/hg38.fa` built from its interval lists, `data.intervals=DIR` or found, see `_gb_intervals`),
`enhancers.ienhancer2l`, `enhancers.ienhancer2l_strength` (iEnhancer-2L layers 1 and 2), `enhancers.files`
(your own FASTA/TSV files) and `enhancers.synthetic` (planted motif grammar).

Duplicate policy, applied before any split is carved so that splits never share a sequence: a sequence and its
reverse complement are the same sequence; within a pool the first occurrence is kept, and every copy of a
sequence seen with both labels is dropped; where a test split is given (official or `data.test`), training rows
whose sequence occurs in it are dropped. Validation is then carved from training (stratified, seeded).
With `data.dedup=near`, near-duplicates (`harness.data.near_duplicates`: canonical 8-mer Jaccard >= 0.5) are removed
too, keeping the first sequence of each cluster (with a given test split: test rows first, so the training copies
of a test sequence go), before any split is carved.

Split protocols (`data.split`): `holdout` (default; the task's test split, official or carved with
`data.test_fraction`) or `cv` (`data.folds=K`, default 5): stratified K-fold over all of the task's data (official
train and test pooled; `enhancers.files` without `data.test`), validation carved from each fold's training part
(`harness.data.splits.fold_indices`); deduplication happens on the pool, before the folds are dealt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import ConfigError, Setting, Settings, merge
from harness.data import encode, readers
from harness.data import splits as split_rules
from harness.data.datasets import SeqDataset, Seqs, concat
from harness.data.near_duplicates import keep_one_per_cluster
from harness.data.readers import (
    Labeled,
    is_tsv_source,
    read_fasta_classes,
    read_source,
    read_tsv,
    require_two_classes,
)
from harness.data.split_cache import cached_splits
from harness.data.split_task import SplitTask
from harness.data.splits import CvTask, check_protocol_options, cv_protocol, fold_indices, stratified_holdout
from harness.evaluation.regression import PRIMARY as REGRESSION_PRIMARY
from harness.evaluation.regression import regression_metrics
from harness.paths import require_data
from harness.plugins import TASKS
from harness.spec import IOSpec, Task
from tasks import _gb_intervals as gbi
from tasks import _genomic_benchmarks as gb
from tasks._synthetic_enhancers import ENSEMBL_MAX, SyntheticLoader, ensembl_lengths, generate

PRIMARY = "auroc"
COMMON = {"val_fraction": Setting(0.1, gt=0, lt=1), "seed": Setting(0, ge=0),
          "split": Setting("holdout", choices=("holdout", "cv")), "folds": Setting(5, ge=2, le=100),
          "dedup": Setting("exact", choices=("exact", "near"))}  # fmt: skip
TEST_FRACTION = Setting(0.2, gt=0, lt=1)
PATH = Setting("", accepts="a path")
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)  # A C G T N → T G C A N
CODE = (*(Path(m.__file__) for m in (encode, readers, split_rules)), Path(__file__))  # in every split-cache key


def cached(
    task: str, opts: Mapping[str, Any], sources: Callable[[], list[Path]], build: Callable[[], Mapping[str, SeqDataset]]
) -> Callable[[], dict[str, SeqDataset]]:
    """A `SplitTask.load` through the node's split cache (`harness.data.split_cache`), keyed on the task, its data
    options, the checksums of `sources()` (resolved at load time, so missing data fails as before) and `CODE`."""
    return lambda: cached_splits(task, opts, [*sources(), *CODE], build)


def binary_task_metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    from harness.evaluation.metrics import binary_metrics  # imported at call time: the metrics module is optional here

    return binary_metrics(y_true, y_score)


def first_occurrence(seqs: Seqs) -> np.ndarray:
    """Per row, the index of the first row holding the same sequence or its reverse complement (exact)."""
    first = np.arange(len(seqs))
    for length in np.unique(seqs.lengths):  # equal sequences have equal lengths: compare within each length
        rows = np.flatnonzero(seqs.lengths == length)
        fwd = seqs.codes[rows, :length]
        rc = _COMPLEMENT[fwd[:, ::-1]]
        diff = fwd != rc
        col = diff.argmax(axis=1)
        use_rc = diff.any(axis=1) & (rc[np.arange(len(rows)), col] < fwd[np.arange(len(rows)), col])
        canon = np.ascontiguousarray(np.where(use_rc[:, None], rc, fwd))
        keys = canon.view(np.dtype((np.void, int(length)))).ravel()
        _, index, inverse = np.unique(keys, return_index=True, return_inverse=True)  # index: first occurrences
        first[rows] = rows[index][inverse]
    return first


def dedupe(ds: SeqDataset) -> SeqDataset:
    """Keep the first occurrence of each sequence (either strand); drop all copies of label-conflicting ones."""
    first = first_occurrence(ds.seqs[0])
    low = np.full(len(ds), np.inf)
    high = np.full(len(ds), -np.inf)
    np.minimum.at(low, first, ds.labels)
    np.maximum.at(high, first, ds.labels)
    keep = (first == np.arange(len(ds))) & (low[first] == high[first])
    return ds.subset(np.flatnonzero(keep))


def dedupe_pool(ds: SeqDataset, mode: str) -> SeqDataset:
    """`dedupe`, then with `mode == "near"` the first sequence of each near-duplicate cluster only."""
    ds = dedupe(ds)
    return ds.subset(keep_one_per_cluster(ds.seqs)) if mode == "near" else ds


def drop_shared(train: SeqDataset, test: SeqDataset) -> SeqDataset:
    """`train` without the rows whose sequence (either strand) occurs in `test`."""
    first = first_occurrence(concat([test, train]).seqs[0])[len(test) :]
    return train.subset(np.flatnonzero(first >= len(test)))


def with_val(
    train: SeqDataset, test: SeqDataset, val_fraction: float, seed: int, dedup: str = "exact"
) -> dict[str, SeqDataset]:
    """Given train/test pools → deduplicated train/val/test, val carved from train."""
    test = dedupe(test)
    train = drop_shared(dedupe(train), test)
    if dedup == "near":  # one cluster representative, test rows first
        keep_rows = keep_one_per_cluster(concat([test, train]).seqs)
        in_test = keep_rows < len(test)
        test, train = test.subset(keep_rows[in_test]), train.subset(keep_rows[~in_test] - len(test))
    keep, val = stratified_holdout(train.labels, val_fraction, seed)
    return {"train": train.subset(keep), "val": train.subset(val), "test": test}


def carve(
    pool: SeqDataset, test_fraction: float, val_fraction: float, seed: int, dedup: str = "exact"
) -> dict[str, SeqDataset]:
    """One pool → deduplicated, stratified, seeded train/val/test (val is `val_fraction` of the non-test rows)."""
    pool = dedupe_pool(pool, dedup)
    rest, test = stratified_holdout(pool.labels, test_fraction, seed)
    keep, val = stratified_holdout(pool.labels[rest], val_fraction, seed)
    return {"train": pool.subset(rest[keep]), "val": pool.subset(rest[val]), "test": pool.subset(test)}


def cv_folds(pool: SeqDataset, folds: int, val_fraction: float, seed: int, dedup: str) -> list[dict[str, SeqDataset]]:
    """One pool → deduplicated, then per fold `{"train", "val", "test"}` (stratified K-fold, val from the rest)."""
    pool = dedupe_pool(pool, dedup)
    return [{s: pool.subset(rows) for s, rows in fold.items()}
            for fold in fold_indices(pool.labels, folds, val_fraction, seed)]  # fmt: skip


def to_dataset(data: Labeled) -> SeqDataset:
    return SeqDataset((Seqs.from_strings(data.seqs),), data.labels.astype(np.float32), data.ids)


def check_length(ds: SeqDataset, length: int, source: str) -> SeqDataset:
    """Fixed-length tasks: every sequence must be `length` bp; raise naming the first that is not."""
    bad = np.flatnonzero(ds.seqs[0].lengths != length)
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{source}: sequence {ds.ids[row]} has length {int(ds.seqs[0].lengths[row])}, expected {length} "
            f"({bad.size} sequences differ)"
        )
    return ds


def _options(task: str, declared: dict[str, Setting], options: Mapping[str, Any]) -> dict[str, Any]:
    """The task's `data.*` options: COMMON plus `declared`, each checked against its declared range, and the
    settings that only apply to one split protocol refused under the other."""
    values = merge("data", Settings({**COMMON, **declared}), options)
    check_protocol_options(task, values, options)
    return values


def _fractions(opts: Mapping[str, Any], with_test: bool = True) -> str:
    test = f"_test{opts['test_fraction']:g}" if with_test else ""
    return f"{test}_val{opts['val_fraction']:g}_seed{opts['seed']}"


def _target(length: int, label: str, target: str) -> tuple[IOSpec, str, Callable[..., dict[str, float]]]:
    """`(io, primary metric, metric function)` of a one-output task: binary (AUROC) or regression (Spearman, as
    `activity.synthetic`)."""
    if target == "regression":
        return IOSpec("seq", (length,), 1, "regression", (label,)), REGRESSION_PRIMARY, regression_metrics
    return IOSpec("seq", (length,), 1, "binary", (label,)), PRIMARY, binary_task_metrics


def _task(
    name: str, length: int, label: str, protocol: str, load: Callable[[], Mapping[str, SeqDataset]], **kw: Any
) -> SplitTask:
    if kw.pop("dedup", "exact") == "near":
        protocol += "+near_dedup"
    io, primary, metric_fn = _target(length, label, kw.pop("target", "binary"))
    return SplitTask(
        name=name,
        io=io,
        primary_metric=primary,
        split_protocol=protocol,
        synthetic=kw.pop("synthetic", False),
        load=load,
        metric_fn=metric_fn,
        **kw,
    )


def _cv_task(
    name: str, length: int, label: str, opts: Mapping[str, Any], pool: Callable[[], SeqDataset], **kw: Any
) -> CvTask:
    """`data.split=cv` over the dataset `pool()` (see the module docstring)."""
    k, val, seed, dedup = opts["folds"], opts["val_fraction"], opts["seed"], opts["dedup"]
    protocol = cv_protocol(k, "stratified", val, seed) + ("+near_dedup" if dedup == "near" else "")
    io, primary, metric_fn = _target(length, label, kw.pop("target", "binary"))
    return CvTask(name, io, primary, protocol, kw.pop("synthetic", False),
                  k, lambda: cv_folds(pool(), k, val, seed, dedup), metric_fn, **kw)  # fmt: skip


# --- Genomic Benchmarks -------------------------------------------------------------------------------------------

GENOMIC_BENCHMARKS = {  # task → (dataset name, fixed length or 0, offline dev TSV under $REGBENCH_DATA or "")
    "enhancers.ensembl": ("human_enhancers_ensembl", 0, ""),
    "enhancers.cohn": ("human_enhancers_cohn", 500, "human_enhancers_cohn_dev.tsv"),
    "promoters.nontata": ("human_nontata_promoters", 251, "human_nontata_promoters_dev.tsv"),
}


def _genomic_benchmarks_factory(task: str) -> Callable[..., SplitTask]:
    dataset, length, tsv = GENOMIC_BENCHMARKS[task]
    label = "promoter" if task.startswith("promoters.") else "enhancer"
    defaults: dict[str, Setting] = {"root": PATH, "download": Setting(False), "genome": PATH, "intervals": PATH}
    if tsv:
        defaults |= {"source": Setting("files", choices=("files", "tsv")), "test_fraction": TEST_FRACTION}

    def factory(**options: Any) -> SplitTask:
        opts = _options(task, defaults, options)
        if tsv and opts["source"] == "tsv":
            if opts["root"] or opts["download"] or opts["genome"] or opts["intervals"]:
                raise ConfigError(
                    f"{task}: data.root/data.download/data.genome/data.intervals apply to data.source=files, not tsv"
                )

            def tsv_path() -> Path:
                return require_data(f"genomic_benchmarks/{tsv}", f"{task} (data.source=tsv)")

            def pool_tsv() -> SeqDataset:
                path = tsv_path()
                ds = to_dataset(read_tsv(path))
                require_two_classes(ds.labels, str(path))
                return check_length(ds, length, str(path))

            about = f"{dataset}: 80% of official test"
            if opts["split"] == "cv":
                return _cv_task(task, length, label, opts, pool_tsv, description=about)

            def load_tsv() -> dict[str, SeqDataset]:
                return carve(pool_tsv(), opts["test_fraction"], opts["val_fraction"], opts["seed"], opts["dedup"])

            protocol = "dev_tsv_stratified" + _fractions(opts)
            load = cached(task, opts, lambda: [tsv_path()], load_tsv)
            return _task(task, length, label, protocol, load, description=about, dedup=opts["dedup"])
        if "test_fraction" in options:
            raise ConfigError(f"{task}: data.test_fraction applies to data.source=tsv; files use the official test")
        if opts["genome"] or opts["intervals"]:
            return _from_intervals(task, dataset, length, label, opts)
        root = Path(opts["root"]).expanduser() if opts["root"] else gb.default_root()
        hint = f"Offline, --set data.source=tsv reads $REGBENCH_DATA/genomic_benchmarks/{tsv}." if tsv else ""

        def official() -> dict[str, SeqDataset]:
            splits = gb.load_official(dataset, root, opts["download"], hint)
            if length:
                for name, ds in splits.items():
                    check_length(ds, length, f"{root / dataset}/{name}")
            return splits

        return _official_task(task, length, label, opts, official, f"Genomic Benchmarks {dataset}")

    return factory


def _from_intervals(task: str, dataset: str, length: int, label: str, opts: Mapping[str, Any]) -> SplitTask:
    """The official splits built from GB's interval lists on a local genome (`tasks._gb_intervals`)."""
    if not opts["genome"]:
        raise ConfigError(f"{task}: data.intervals={opts['intervals']} needs data.genome=/path/hg38.fa as well")
    if opts["root"] or opts["download"]:
        raise ConfigError(f"{task}: data.genome builds from interval lists; data.root/data.download do not apply")

    def official() -> dict[str, SeqDataset]:
        splits = gbi.load_from_intervals(dataset, opts["intervals"], opts["genome"])
        if length:
            for name, ds in splits.items():
                check_length(ds, length, f"{dataset} {name} built on {opts['genome']}")
        return splits

    description = f"Genomic Benchmarks {dataset}, from its interval lists on {opts['genome']}"
    return _official_task(task, length, label, opts, official, description)


def _official_task(
    task: str,
    length: int,
    label: str,
    opts: Mapping[str, Any],
    official: Callable[[], Mapping[str, SeqDataset]],
    description: str,
) -> Task:
    """The official train/test (val carved from train), or under `data.split=cv` the two pooled."""
    if opts["split"] == "cv":
        return _cv_task(task, length, label, opts, lambda: concat(list(official().values())), description=description)

    def load() -> dict[str, SeqDataset]:
        splits = official()
        return with_val(splits["train"], splits["test"], opts["val_fraction"], opts["seed"], opts["dedup"])

    protocol = "official_test+stratified" + _fractions(opts, with_test=False)
    return _task(task, length, label, protocol, load, description=description, dedup=opts["dedup"])


for _name in GENOMIC_BENCHMARKS:
    TASKS.register(_name, _genomic_benchmarks_factory(_name), f"Genomic Benchmarks {GENOMIC_BENCHMARKS[_name][0]}")


# --- iEnhancer-2L ---------------------------------------------------------------------------------------------------

IENHANCER2L = {  # task → [(label, file)], what the positive class is
    "enhancers.ienhancer2l": ([(1, "enhancer_train.fa"), (0, "non_enhancer_train.fa")], "enhancer"),
    "enhancers.ienhancer2l_strength": ([(1, "strong_enhancer_train.fa"), (0, "weak_enhancer_train.fa")], "strong"),
}


def _ienhancer2l_factory(task: str) -> Callable[..., SplitTask]:
    files, label = IENHANCER2L[task]

    def factory(**options: Any) -> SplitTask:
        opts = _options(task, {"dir": PATH, "test_fraction": TEST_FRACTION}, options)

        def folder() -> Path:
            return Path(opts["dir"]).expanduser() if opts["dir"] else require_data("ienhancer2l", task)

        def pool() -> SeqDataset:
            where = folder()
            ds = to_dataset(read_fasta_classes([(y, where / f) for y, f in files]))
            return check_length(ds, 200, str(where))

        def load() -> dict[str, SeqDataset]:
            return carve(pool(), opts["test_fraction"], opts["val_fraction"], opts["seed"], opts["dedup"])

        about = "iEnhancer-2L training set (Liu et al. 2016)"
        if opts["split"] == "cv":
            return _cv_task(task, 200, label, opts, pool, description=about)
        protocol = "stratified_holdout" + _fractions(opts)
        sources = cached(task, opts, lambda: [folder() / f for _, f in files], load)
        return _task(task, 200, label, protocol, sources, description=about, dedup=opts["dedup"])

    return factory


_LAYERS = {"enhancers.ienhancer2l": "layer 1, enhancer vs non-enhancer", "enhancers.ienhancer2l_strength": "layer 2"}
for _name in IENHANCER2L:
    TASKS.register(_name, _ienhancer2l_factory(_name), f"iEnhancer-2L {_LAYERS[_name]}, 200 bp")


# --- your own files, synthetic ----------------------------------------------------------------------------------------


TARGETS = ("auto", "binary", "regression")


@TASKS.decorator("enhancers.files", "your data: data.train=TSV or 1:pos.fa,0:neg.fa, optional data.test")
def files_task(**options: Any) -> Task:
    """`data.target`: `auto` (default) makes a TSV whose label column holds numbers other than 0 and 1 a regression
    task (Spearman ρ primary, as `activity.synthetic`), else binary; `binary` requires 0/1 labels; `regression`
    reads the labels as values whatever they are. The regression splits are stratified on label quintiles."""
    declared = {"train": PATH, "test": PATH, "test_fraction": TEST_FRACTION, "target": Setting("auto", choices=TARGETS)}
    opts = _options("enhancers.files", declared, options)
    if not opts["train"]:
        raise ConfigError(
            "enhancers.files needs data.train=PATH.tsv (sequence<TAB>label) or data.train=1:pos.fa,0:neg.fa"
        )
    if opts["test"] and "test_fraction" in options:
        raise ConfigError("enhancers.files: data.test_fraction applies only when no data.test is given")
    target = opts["target"]
    if target == "auto":  # the label column decides (read and checked now: bad labels fail before any work); a
        # file that is not there yet fails when the splits load, as every task's missing data does
        tsv = is_tsv_source(opts["train"]) and Path(opts["train"]).is_file()
        target = read_source(opts["train"], "auto").target if tsv else "binary"
    label = "value" if target == "regression" else "positive"
    about = f"files: {opts['train']}"

    def source(spec: str) -> SeqDataset:
        return to_dataset(read_source(spec, target))

    if opts["split"] == "cv":
        if opts["test"]:
            raise ConfigError(f"enhancers.files: data.split=cv folds data.train; drop data.test={opts['test']!r}")
        return _cv_task("enhancers.files", 0, label, opts, lambda: source(opts["train"]), description=about,
                        target=target)  # fmt: skip

    def load() -> dict[str, SeqDataset]:
        train = source(opts["train"])
        if opts["test"]:
            return with_val(train, source(opts["test"]), opts["val_fraction"], opts["seed"], opts["dedup"])
        return carve(train, opts["test_fraction"], opts["val_fraction"], opts["seed"], opts["dedup"])

    protocol = (
        ("given_test+stratified" + _fractions(opts, False)) if opts["test"] else "stratified_holdout" + _fractions(opts)
    )
    sources = cached("enhancers.files", opts, lambda: source_paths(opts["train"]) + source_paths(opts["test"]), load)
    return _task("enhancers.files", 0, label, protocol, sources, description=about, dedup=opts["dedup"],
                 target=target)  # fmt: skip


def source_paths(spec: str) -> list[Path]:
    """The files of a `read_source` spec (a TSV path or `label:path` FASTA pairs); `[]` for an empty spec."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if is_tsv_source(spec):
        return [Path(items[0])]
    return [Path(item.partition(":")[2].strip()) for item in items]


@TASKS.decorator("enhancers.synthetic", "ETS–AP-1 composite grammar planted in GC-matched background (synthetic)")
def synthetic_task(**options: Any) -> Task:
    """`data.lengths=ensembl` draws each length from human_enhancers_ensembl's distribution (mean 270 bp, sd 123,
    100 to 573 bp; `data.length` then does not apply) and pads to 573; with `data.n=154842` it is that set's size."""
    declared = {"n": Setting(2000, ge=50), "length": Setting(200, ge=100, le=100_000),
                "lengths": Setting("fixed", choices=("fixed", "ensembl")), "test_fraction": TEST_FRACTION}  # fmt: skip
    opts = _options("enhancers.synthetic", declared, options)
    if opts["lengths"] == "ensembl" and "length" in options:
        raise ConfigError("enhancers.synthetic: data.length does not apply with data.lengths=ensembl (100-573 bp)")
    length = ENSEMBL_MAX if opts["lengths"] == "ensembl" else opts["length"]
    if opts["split"] == "cv":

        def pool() -> SeqDataset:
            sizes = ensembl_lengths(opts["n"], opts["seed"]) if opts["lengths"] == "ensembl" else None
            return generate(opts["n"], opts["length"], opts["seed"], sizes).dataset

        return _cv_task("enhancers.synthetic", length, "enhancer", opts, pool, synthetic=True)

    def split(ds: SeqDataset) -> dict[str, SeqDataset]:
        return carve(ds, opts["test_fraction"], opts["val_fraction"], opts["seed"], opts["dedup"])

    loader = SyntheticLoader(opts, split, CODE)
    protocol = "synthetic_stratified" + _fractions(opts)
    return _task("enhancers.synthetic", length, "enhancer", protocol, loader, synthetic=True, dedup=opts["dedup"])
