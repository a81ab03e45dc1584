"""Enhancer and promoter classification tasks (binary, primary metric AUROC).

Registered: `enhancers.ensembl`, `enhancers.cohn`, `promoters.nontata` (Genomic Benchmarks: the package's download,
or with `data.genome=/path/hg38.fa` built from its interval lists, `data.intervals=DIR` or found, see `_gb_intervals`),
`enhancers.ienhancer2l`, `enhancers.ienhancer2l_strength` (iEnhancer-2L layers 1 and 2), `enhancers.files`
(your own FASTA/TSV files) and `enhancers.synthetic` (planted motif grammar).

Duplicate policy, applied before any split is carved so that splits never share a sequence: a sequence and its
reverse complement are the same sequence; within a pool the first occurrence is kept, and every copy of a
sequence seen with both labels is dropped; where a test split is given (official or `data.test`), training rows
whose sequence occurs in it are dropped. Validation is then carved from training (stratified, seeded).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import ConfigError, merge
from harness.data import encode, readers
from harness.data import splits as split_rules
from harness.data.datasets import SeqDataset, Seqs, concat
from harness.data.readers import Labeled, read_fasta_classes, read_source, read_tsv, require_two_classes
from harness.data.split_cache import cached_splits
from harness.data.splits import stratified_holdout
from harness.paths import require_data
from harness.plugins import TASKS
from harness.spec import IOSpec
from tasks import _gb_intervals as gbi
from tasks import _genomic_benchmarks as gb
from tasks._split_task import SplitTask
from tasks._synthetic_enhancers import ENSEMBL_MAX, SyntheticLoader

PRIMARY = "auroc"
COMMON = {"val_fraction": 0.1, "seed": 0}
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


def drop_shared(train: SeqDataset, test: SeqDataset) -> SeqDataset:
    """`train` without the rows whose sequence (either strand) occurs in `test`."""
    first = first_occurrence(concat([test, train]).seqs[0])[len(test) :]
    return train.subset(np.flatnonzero(first >= len(test)))


def with_val(train: SeqDataset, test: SeqDataset, val_fraction: float, seed: int) -> dict[str, SeqDataset]:
    """Given train/test pools → deduplicated train/val/test, val carved from train."""
    test = dedupe(test)
    train = drop_shared(dedupe(train), test)
    keep, val = stratified_holdout(train.labels, val_fraction, seed)
    return {"train": train.subset(keep), "val": train.subset(val), "test": test}


def carve(pool: SeqDataset, test_fraction: float, val_fraction: float, seed: int) -> dict[str, SeqDataset]:
    """One pool → deduplicated, stratified, seeded train/val/test (val is `val_fraction` of the non-test rows)."""
    pool = dedupe(pool)
    rest, test = stratified_holdout(pool.labels, test_fraction, seed)
    keep, val = stratified_holdout(pool.labels[rest], val_fraction, seed)
    return {"train": pool.subset(rest[keep]), "val": pool.subset(rest[val]), "test": pool.subset(test)}


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


def _options(task: str, defaults: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    values = merge("data", {**COMMON, **defaults}, options)
    for key in ("val_fraction", "test_fraction"):
        if key in values and not 0.0 < values[key] < 1.0:
            raise ConfigError(f"data.{key}={values[key]!r} for {task}: must be in (0, 1)")
    return values


def _fractions(opts: Mapping[str, Any], with_test: bool = True) -> str:
    test = f"_test{opts['test_fraction']:g}" if with_test else ""
    return f"{test}_val{opts['val_fraction']:g}_seed{opts['seed']}"


def _task(
    name: str, length: int, label: str, protocol: str, load: Callable[[], Mapping[str, SeqDataset]], **kw: Any
) -> SplitTask:
    return SplitTask(
        name=name,
        io=IOSpec("seq", (length,), 1, "binary", (label,)),
        primary_metric=PRIMARY,
        split_protocol=protocol,
        synthetic=kw.pop("synthetic", False),
        load=load,
        metric_fn=binary_task_metrics,
        **kw,
    )


# --- Genomic Benchmarks -------------------------------------------------------------------------------------------

GENOMIC_BENCHMARKS = {  # task → (dataset name, fixed length or 0, offline dev TSV under $REGBENCH_DATA or "")
    "enhancers.ensembl": ("human_enhancers_ensembl", 0, ""),
    "enhancers.cohn": ("human_enhancers_cohn", 500, "human_enhancers_cohn_dev.tsv"),
    "promoters.nontata": ("human_nontata_promoters", 251, "human_nontata_promoters_dev.tsv"),
}


def _genomic_benchmarks_factory(task: str) -> Callable[..., SplitTask]:
    dataset, length, tsv = GENOMIC_BENCHMARKS[task]
    label = "promoter" if task.startswith("promoters.") else "enhancer"
    defaults: dict[str, Any] = {"root": "", "download": False, "genome": "", "intervals": ""}
    if tsv:
        defaults |= {"source": "files", "test_fraction": 0.2}

    def factory(**options: Any) -> SplitTask:
        opts = _options(task, defaults, options)
        if tsv and opts["source"] not in ("files", "tsv"):
            raise ConfigError(f"data.source={opts['source']!r} for {task}: use files (official splits) or tsv")
        if tsv and opts["source"] == "tsv":
            if opts["root"] or opts["download"] or opts["genome"] or opts["intervals"]:
                raise ConfigError(
                    f"{task}: data.root/data.download/data.genome/data.intervals apply to data.source=files, not tsv"
                )

            def tsv_path() -> Path:
                return require_data(f"genomic_benchmarks/{tsv}", f"{task} (data.source=tsv)")

            def load_tsv() -> dict[str, SeqDataset]:
                path = tsv_path()
                ds = to_dataset(read_tsv(path))
                require_two_classes(ds.labels, str(path))
                return carve(
                    check_length(ds, length, str(path)), opts["test_fraction"], opts["val_fraction"], opts["seed"]
                )

            protocol = "dev_tsv_stratified" + _fractions(opts)
            load = cached(task, opts, lambda: [tsv_path()], load_tsv)
            return _task(task, length, label, protocol, load, description=f"{dataset}: 80% of official test")
        if "test_fraction" in options:
            raise ConfigError(f"{task}: data.test_fraction applies to data.source=tsv; files use the official test")
        if opts["genome"] or opts["intervals"]:
            return _from_intervals(task, dataset, length, label, opts)
        root = Path(opts["root"]).expanduser() if opts["root"] else gb.default_root()
        hint = f"Offline, --set data.source=tsv reads $REGBENCH_DATA/genomic_benchmarks/{tsv}." if tsv else ""

        def load_official() -> dict[str, SeqDataset]:
            splits = gb.load_official(dataset, root, opts["download"], hint)
            if length:
                for name, ds in splits.items():
                    check_length(ds, length, f"{root / dataset}/{name}")
            return with_val(splits["train"], splits["test"], opts["val_fraction"], opts["seed"])

        protocol = "official_test+stratified" + _fractions(opts, with_test=False)
        return _task(task, length, label, protocol, load_official, description=f"Genomic Benchmarks {dataset}")

    return factory


def _from_intervals(task: str, dataset: str, length: int, label: str, opts: Mapping[str, Any]) -> SplitTask:
    """The official splits built from GB's interval lists on a local genome (`tasks._gb_intervals`)."""
    if not opts["genome"]:
        raise ConfigError(f"{task}: data.intervals={opts['intervals']} needs data.genome=/path/hg38.fa as well")
    if opts["root"] or opts["download"]:
        raise ConfigError(f"{task}: data.genome builds from interval lists; data.root/data.download do not apply")

    def load() -> dict[str, SeqDataset]:
        splits = gbi.load_from_intervals(dataset, opts["intervals"], opts["genome"])
        if length:
            for name, ds in splits.items():
                check_length(ds, length, f"{dataset} {name} built on {opts['genome']}")
        return with_val(splits["train"], splits["test"], opts["val_fraction"], opts["seed"])

    protocol = "official_test+stratified" + _fractions(opts, with_test=False)
    description = f"Genomic Benchmarks {dataset}, from its interval lists on {opts['genome']}"
    return _task(task, length, label, protocol, load, description=description)


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
        opts = _options(task, {"dir": "", "test_fraction": 0.2}, options)

        def folder() -> Path:
            return Path(opts["dir"]).expanduser() if opts["dir"] else require_data("ienhancer2l", task)

        def load() -> dict[str, SeqDataset]:
            where = folder()
            ds = to_dataset(read_fasta_classes([(y, where / f) for y, f in files]))
            return carve(check_length(ds, 200, str(where)), opts["test_fraction"], opts["val_fraction"], opts["seed"])

        protocol = "stratified_holdout" + _fractions(opts)
        sources = cached(task, opts, lambda: [folder() / f for _, f in files], load)
        return _task(task, 200, label, protocol, sources, description="iEnhancer-2L training set (Liu et al. 2016)")

    return factory


_LAYERS = {"enhancers.ienhancer2l": "layer 1, enhancer vs non-enhancer", "enhancers.ienhancer2l_strength": "layer 2"}
for _name in IENHANCER2L:
    TASKS.register(_name, _ienhancer2l_factory(_name), f"iEnhancer-2L {_LAYERS[_name]}, 200 bp")


# --- your own files, synthetic ----------------------------------------------------------------------------------------


@TASKS.decorator("enhancers.files", "your data: data.train=TSV or 1:pos.fa,0:neg.fa, optional data.test")
def files_task(**options: Any) -> SplitTask:
    opts = _options("enhancers.files", {"train": "", "test": "", "test_fraction": 0.2}, options)
    if not opts["train"]:
        raise ConfigError("enhancers.files needs data.train=PATH.tsv (seq<TAB>label) or data.train=1:pos.fa,0:neg.fa")
    if opts["test"] and "test_fraction" in options:
        raise ConfigError("enhancers.files: data.test_fraction applies only when no data.test is given")

    def load() -> dict[str, SeqDataset]:
        train = to_dataset(read_source(opts["train"]))
        if opts["test"]:
            return with_val(train, to_dataset(read_source(opts["test"])), opts["val_fraction"], opts["seed"])
        return carve(train, opts["test_fraction"], opts["val_fraction"], opts["seed"])

    protocol = (
        ("given_test+stratified" + _fractions(opts, False)) if opts["test"] else "stratified_holdout" + _fractions(opts)
    )
    sources = cached("enhancers.files", opts, lambda: source_paths(opts["train"]) + source_paths(opts["test"]), load)
    return _task("enhancers.files", 0, "positive", protocol, sources, description=f"files: {opts['train']}")


def source_paths(spec: str) -> list[Path]:
    """The files of a `read_source` spec (a TSV path or `label:path` FASTA pairs); `[]` for an empty spec."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if len(items) == 1 and not re.match(r"^[^:/\\]+:", items[0]):  # as `read_source` tells a TSV from pairs
        return [Path(items[0])]
    return [Path(item.partition(":")[2].strip()) for item in items]


@TASKS.decorator("enhancers.synthetic", "ETS–AP-1 composite grammar planted in GC-matched background (synthetic)")
def synthetic_task(**options: Any) -> SplitTask:
    """`data.lengths=ensembl` draws each length from human_enhancers_ensembl's distribution (mean 270 bp, sd 123,
    100 to 573 bp; `data.length` then does not apply) and pads to 573; with `data.n=154842` it is that set's size."""
    defaults = {"n": 2000, "length": 200, "lengths": "fixed", "test_fraction": 0.2}
    opts = _options("enhancers.synthetic", defaults, options)
    if opts["n"] < 50 or opts["length"] < 100:
        raise ConfigError(
            f"enhancers.synthetic: need data.n >= 50 and data.length >= 100, got {opts['n']}, {opts['length']}"
        )
    if opts["lengths"] not in ("fixed", "ensembl"):
        raise ConfigError(f"enhancers.synthetic: data.lengths={opts['lengths']!r}; use fixed or ensembl")
    if opts["lengths"] == "ensembl" and "length" in options:
        raise ConfigError("enhancers.synthetic: data.length does not apply with data.lengths=ensembl (100-573 bp)")

    def split(ds: SeqDataset) -> dict[str, SeqDataset]:
        return carve(ds, opts["test_fraction"], opts["val_fraction"], opts["seed"])

    loader = SyntheticLoader(opts, split, CODE)
    protocol = "synthetic_stratified" + _fractions(opts)
    length = ENSEMBL_MAX if opts["lengths"] == "ensembl" else opts["length"]
    return _task("enhancers.synthetic", length, "enhancer", protocol, loader, synthetic=True)
