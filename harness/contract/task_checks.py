"""Contract checks of a task (`harness.spec.Task`): what it declares, the arrays its splits hand out, unique ids,
splits that share no sequence (either strand), a digest two independent builds agree on, labels and metrics.

The checks read the task's splits; `whole_batches` takes every row of every split once (shared by the checks that
need all rows). `fresh_build` builds a task in its own empty cache folder, so a digest is compared across two
builds rather than against a cached copy.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from harness.contract import Check, CheckSkipped, ContractError, expect
from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import N_CODE
from harness.data.splits import duplicate_report
from harness.plugins import make_task
from harness.spec import Batch, Dataset, IOSpec, Task

SPLITS = ("train", "val", "test")
COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)  # A C G T N → T G C A N
BATCH = 32  # rows per checked batch
SINGLE_ROWS = 8  # rows of that batch also taken one at a time


@contextlib.contextmanager
def own_cache() -> Iterator[None]:
    """`$REGBENCH_CACHE` pointed at a new empty folder for the duration (restored after)."""
    old = os.environ.get("REGBENCH_CACHE")
    with tempfile.TemporaryDirectory(prefix="regbench-check-cache-") as folder:
        os.environ["REGBENCH_CACHE"] = folder
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("REGBENCH_CACHE", None)
            else:
                os.environ["REGBENCH_CACHE"] = old


def fresh_build(name: str, options: Mapping[str, Any]) -> Task:
    """Build task `name` with `options` in an empty cache folder, splits loaded."""
    with own_cache():
        task = make_task(name, dict(options))
        task.splits()
    return task


def branches(batch: Batch) -> list[tuple[np.ndarray, np.ndarray]]:
    """`(codes, mask)` per branch of a sequence batch."""
    return list(zip(batch.inputs[0::2], batch.inputs[1::2], strict=True))


def whole_batches(task: Task) -> dict[str, Batch]:
    """Every row of every split, as one batch per split."""
    return {name: ds.take(np.arange(len(ds))) for name, ds in task.splits().items()}


def require_sequences(task: Task) -> None:
    if task.io.inputs == "features":
        raise CheckSkipped(f"{task.name} is a feature task: it has no sequences")


def check_declared(task: Task) -> str:
    """Name, metric and an `IOSpec` consistent with itself."""
    expect(isinstance(task.name, str) and task.name, f"task name {task.name!r}")
    expect(isinstance(task.primary_metric, str) and task.primary_metric, f"primary_metric {task.primary_metric!r}")
    io = task.io
    expect(isinstance(io, IOSpec), f"io is a {type(io).__name__}, not an IOSpec")
    expect(len(io.lengths) == {"seq": 1, "seq_pair": 2, "features": 1}[io.inputs],
           f"io.lengths {io.lengths} for inputs {io.inputs!r}")  # fmt: skip
    expect(io.inputs != "features" or io.lengths == (0,), f"a feature task declares io.lengths {io.lengths}, not (0,)")
    expect(all(isinstance(n, int) and n >= 0 for n in io.lengths), f"io.lengths {io.lengths}: integers >= 0")
    expect(io.target in ("binary", "multilabel", "regression"), f"io.target {io.target!r}")
    expect(io.n_outputs == 1 or (io.target in ("multilabel", "regression") and io.n_outputs > 1),
           f"io.n_outputs {io.n_outputs} with target {io.target!r}")  # fmt: skip
    expect(len(io.label_names) in (0, io.n_outputs), f"{len(io.label_names)} label names for {io.n_outputs} outputs")
    return f"{io.inputs} {io.lengths}, {io.n_outputs} {io.target} output(s), primary metric {task.primary_metric}"


def check_splits(task: Task) -> str:
    """Exactly train/val/test, each a non-empty `Dataset` with one id and one label row per row."""
    splits = task.splits()
    expect(sorted(splits) == sorted(SPLITS), f"splits {sorted(splits)}, expected {list(SPLITS)}")
    for name, ds in splits.items():
        expect(isinstance(ds, Dataset), f"{name} is a {type(ds).__name__}, not a harness.spec.Dataset")
        expect(len(ds) > 0, f"{name} is empty")
        expect(ds.ids.shape == (len(ds),) and len(ds.labels) == len(ds),
               f"{name}: {len(ds)} rows, ids {ds.ids.shape}, labels {len(ds.labels)}")  # fmt: skip
    return ", ".join(f"{name} {len(ds)}" for name, ds in splits.items())


def check_sequence_batch(ds: Dataset, idx: np.ndarray, batch: Batch, io: IOSpec, split: str = "") -> None:
    """Codes uint8 in 0..4, masks bool prefixes of each row's own length (a row taken alone), fixed widths kept."""
    expect(len(batch.inputs) == 2 * io.n_branches, f"{split}: {len(batch.inputs)} input arrays, expected "
           f"{2 * io.n_branches} (codes, mask per branch)")  # fmt: skip
    singles = {int(i): branches(ds.take(np.array([i]))) for i in idx[:SINGLE_ROWS]}
    for b, ((codes, mask), fixed) in enumerate(zip(branches(batch), io.lengths, strict=True)):
        where = f"{split} branch {b}"
        expect(codes.dtype == np.uint8 and mask.dtype == np.bool_, f"{where}: {codes.dtype}, {mask.dtype}, "
               "expected uint8 codes and bool mask")  # fmt: skip
        expect(codes.ndim == 2 and mask.shape == codes.shape == (len(idx), codes.shape[1]),
               f"{where}: codes {codes.shape}, mask {mask.shape} for {len(idx)} rows")  # fmt: skip
        expect(codes.max(initial=0) <= N_CODE, f"{where}: code {codes.max()} > {N_CODE}")
        lengths = mask.sum(axis=1)
        expect((mask == (np.arange(codes.shape[1]) < lengths[:, None])).all(), f"{where}: mask is not a prefix")
        expect((codes[~mask] == N_CODE).all(), f"{where}: padding is not N")
        expect(codes.shape[1] == (fixed or lengths.max()), f"{where}: width {codes.shape[1]}, io {fixed}")
        if fixed:
            expect((lengths == fixed).all(), f"{where}: lengths {set(lengths.tolist())} != io.lengths {fixed}")
        for row, i in enumerate(idx[:SINGLE_ROWS]):
            one_codes, one_mask = singles[int(i)][b]
            expect(one_mask.all() and lengths[row] == one_codes.shape[1], f"{where}, row {i}: taken alone, length "
                   f"{one_codes.shape[1]} vs {lengths[row]} in a batch")  # fmt: skip
            expect((codes[row, : lengths[row]] == one_codes[0]).all(), f"{where}, row {i}: codes differ")


def check_arrays(task: Task, rng: np.random.Generator) -> str:
    """`take(idx)` of an unsorted index gives the arrays the `IOSpec` says, `y` equal to `labels[idx]`."""
    io, widths = task.io, set()
    for name, ds in task.splits().items():
        idx = rng.permutation(len(ds))[:BATCH]  # unsorted
        batch = ds.take(idx)
        expect(isinstance(batch, Batch), f"{name}: take() returned a {type(batch).__name__}, not a Batch")
        expected_y = (len(idx),) if io.target == "binary" or io.n_outputs == 1 else (len(idx), io.n_outputs)
        expect(batch.y.dtype == np.float32 and batch.y.shape == expected_y,
               f"{name}: y {batch.y.dtype}{batch.y.shape}, expected float32{expected_y}")  # fmt: skip
        expect(np.array_equal(batch.y, np.asarray(ds.labels)[idx].astype(np.float32)), f"{name}: y != labels[idx]")
        if io.inputs == "features":
            (features,) = batch.inputs
            expect(features.dtype == np.float32 and features.ndim == 2 and features.shape[0] == len(idx),
                   f"{name}: features {features.dtype}{features.shape} for {len(idx)} rows")  # fmt: skip
            expect(np.isfinite(features).all(), f"{name}: non-finite features")
            widths.add(features.shape[1])
        else:
            check_sequence_batch(ds, idx, batch, io, name)
    expect(len(widths) <= 1 and 0 not in widths, f"feature widths per split: {widths}")
    return f"batches of {BATCH} as {io.inputs} {io.lengths} says, y as labels[idx]"


def check_reverse_complement(task: Task, rng: np.random.Generator) -> str:
    """`take(idx, reverse_complement=True)` keeps shapes and masks and reverse-complements the masked part; a
    feature task refuses it with a ValueError naming reverse-complement."""
    if task.io.inputs == "features":
        try:
            task.splits()["train"].take(np.arange(2), reverse_complement=True)
        except ValueError as err:
            expect("reverse-complement" in str(err), f"unclear refusal: {err}")
            return "feature task refuses reverse-complement"
        raise ContractError("a feature task took reverse_complement=True without a ValueError")
    for name, ds in task.splits().items():
        idx = rng.permutation(len(ds))[:BATCH]
        fwd, rev = ds.take(idx), ds.take(idx, reverse_complement=True)
        expect(np.array_equal(fwd.y, rev.y), f"{name}: labels change under reverse complement")
        for (codes, mask), (rc_codes, rc_mask) in zip(branches(fwd), branches(rev), strict=True):
            expect(rc_codes.shape == codes.shape and rc_codes.dtype == np.uint8,
                   f"{name}: reverse complement {rc_codes.dtype}{rc_codes.shape}, forward {codes.shape}")  # fmt: skip
            expect(np.array_equal(rc_mask, mask), f"{name}: reverse complement changes the mask")
            for row, n in enumerate(mask.sum(axis=1)):
                expect((rc_codes[row, :n] == COMPLEMENT[codes[row, :n][::-1]]).all(), f"{name}: row {idx[row]}")
                expect((rc_codes[row, n:] == N_CODE).all(), f"{name}: row {idx[row]} padding")
    return "shapes and masks kept, sequences reverse-complemented"


def check_ids(task: Task) -> str:
    """Ids unique within each split and across splits."""
    ids = {name: [str(i) for i in ds.ids] for name, ds in task.splits().items()}
    for name, values in ids.items():
        dupes = sorted(v for v, n in Counter(values).items() if n > 1)
        expect(not dupes, f"{name}: duplicate ids {dupes[:10]}")
    for a, b in itertools.combinations(SPLITS, 2):
        shared = sorted(set(ids[a]) & set(ids[b]))
        expect(not shared, f"{len(shared)} ids in both {a} and {b}: {shared[:10]}")
    return f"{sum(len(v) for v in ids.values())} ids, all unique"


def as_seq_datasets(task: Task, whole: Mapping[str, Batch], branch: int | None = None) -> dict[str, SeqDataset]:
    """Whole-split batches → `SeqDataset`s for the duplicate audit (all branches, or only `branch`)."""
    out = {}
    for name, batch in whole.items():
        parts = branches(batch) if branch is None else [branches(batch)[branch]]
        seqs = tuple(Seqs(codes, mask.sum(axis=1).astype(np.int32)) for codes, mask in parts)
        out[name] = SeqDataset(seqs, batch.y, np.asarray(task.splits()[name].ids))
    return out


def shared(across: Mapping[tuple[str, str], list[tuple[str, str]]]) -> str:
    """Pairs of splits sharing sequences, in one line: `train ∩ test: 2 shared, e.g. r0 == r30, r5 == r41`."""
    parts = [f"{a} ∩ {b}: {len(pairs)} shared, e.g. " + ", ".join(f"{ia} == {ib}" for ia, ib in pairs[:3])
             for (a, b), pairs in across.items() if pairs]  # fmt: skip
    return "; ".join(parts)


def check_disjoint(task: Task, whole: Mapping[str, Batch]) -> str:
    """No sequence (either strand) in two splits; for pair tasks, no pair — and under a chromosome split, no single
    enhancer or promoter window either (a random split shares elements by design, see `tasks._epi_splits`)."""
    require_sequences(task)
    report = duplicate_report(as_seq_datasets(task, whole))
    expect(report.n_across == 0, shared(report.across))
    if task.io.n_branches == 2 and task.split_protocol == "chromosome":
        for b, role in enumerate(("enhancer", "promoter")):
            report = duplicate_report(as_seq_datasets(task, whole, b))
            expect(report.n_across == 0, f"{role} windows in two splits: {shared(report.across)}")
    return "no sequence (either strand) in two splits"


def check_digest(task: Task, rebuild: Callable[[], Task]) -> str:
    """A non-empty digest, equal for an independent second build (`rebuild`)."""
    digest = task.digest()
    expect(isinstance(digest, str) and digest, f"digest() returned {digest!r}")
    again = rebuild().digest()
    expect(again == digest, f"two independent builds differ: {digest[:12]} vs {again[:12]}")
    return f"{digest[:12]} in two builds"


def check_metrics(task: Task, whole: Mapping[str, Batch]) -> str:
    """`metrics` of random scores on the test split give a finite primary metric."""
    y_true = whole["test"].y
    y_score = np.random.default_rng(1).random(y_true.shape)
    metrics = task.metrics(y_true, y_score)
    expect(task.primary_metric in metrics, f"{task.primary_metric} not in {sorted(metrics)}")
    value = float(metrics[task.primary_metric])
    expect(np.isfinite(value), f"{task.primary_metric} of random scores is {value}")
    return f"{task.primary_metric} of random scores {value:.3f}"


def check_labels(task: Task) -> str:
    """0/1 labels of the target's shape (finite, non-constant values for regression); both classes in every binary
    split; label groups inside the outputs."""
    io = task.io
    for name, ds in task.splits().items():
        labels = np.asarray(ds.labels)
        if io.target == "regression":
            expect(np.isfinite(labels).all() and labels.shape[0] == len(ds), f"{name}: targets {labels.shape}")
            expect(np.unique(labels).size > 1, f"{name}: constant targets")
            continue
        expect(np.isin(labels, (0, 1)).all(), f"{name}: labels outside {{0, 1}}")
        if io.target == "binary":
            expect(labels.shape == (len(ds),), f"{name}: labels {labels.shape}, expected ({len(ds)},)")
            expect(set(np.unique(labels).tolist()) == {0, 1}, f"{name}: one class only")
        else:
            expect(labels.shape == (len(ds), io.n_outputs), f"{name}: {labels.shape}, n_outputs {io.n_outputs}")
    if io.target == "multilabel":
        expect(np.asarray(task.splits()["train"].labels).any(), "no positive label in train")
        for group, idx in task.label_groups.items():
            expect(len(idx) and min(idx) >= 0 and max(idx) < io.n_outputs, f"label group {group}: {idx}")
    return f"{io.target} targets" if io.target == "regression" else f"0/1 {io.target} labels"


def task_checks(name: str, options: Mapping[str, Any], seed: int = 0) -> list[Check]:
    """Every check of task `name` built with data `options`, in order, for `harness.contract.run`."""
    rng = np.random.default_rng(seed)
    built: dict[str, Any] = {}

    def task() -> Task:
        if "task" not in built:
            built["task"] = fresh_build(name, options)
        return built["task"]

    def whole() -> dict[str, Batch]:
        if "whole" not in built:
            built["whole"] = whole_batches(task())
        return built["whole"]

    return [
        ("declared", lambda: check_declared(task())),
        ("splits", lambda: check_splits(task())),
        ("arrays", lambda: check_arrays(task(), rng)),
        ("reverse complement", lambda: check_reverse_complement(task(), rng)),
        ("ids", lambda: check_ids(task())),
        ("disjoint", lambda: check_disjoint(task(), whole())),
        ("digest", lambda: check_digest(task(), lambda: fresh_build(name, options))),
        ("labels", lambda: check_labels(task())),
        ("metrics", lambda: check_metrics(task(), whole())),
    ]
