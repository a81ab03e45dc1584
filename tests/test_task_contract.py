"""The task contract of `harness/spec.py`, checked on every task that can be built offline.

Cases: the synthetic tasks, `enhancers.files` and the Genomic Benchmarks loader on files written here,
`chromatin.basset` / `chromatin.deepsea` on small files in their real formats, and (with `$REGBENCH_DATA`) the real
iEnhancer-2L, Cohn / non-TATA dev TSVs and the TargetFinder NHEK feature table. `epi.<cell>` tasks need hg19, which
is not available offline: only their declaration and the missing-genome error are checked.

Each task is built once per module (inputs and caches under a module tmp folder); the digest test builds it again
from a fresh cache, and once more with another `data.seed`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import random_seqs
from test_enhancer_tasks import write_gb_layout

from harness.config import ConfigError
from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import N_CODE
from harness.data.splits import duplicate_report
from harness.paths import DataNotFoundError
from harness.plugins import TASKS, load_plugins, make_task
from harness.spec import Batch, Dataset, IOSpec, Task
from tasks import epi
from tasks._chromatin_formats import write_deepsea_bundle
from tasks._synthetic_chromatin import write_synthetic
from tasks._synthetic_enhancers import revcomp
from tasks._synthetic_peaks import write_synthetic_peaks

SPLITS = ("train", "val", "test")
COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)  # A C G T N → T G C A N
BATCH = 32  # rows per checked batch
SINGLE_ROWS = 8  # rows of that batch also taken one at a time

Inputs = Callable[[Path], dict[str, Any]]  # writes a case's input files into a folder → the data options naming them


@dataclass(frozen=True)
class Case:
    """A task build: registered name, data options, and what the task must declare."""

    id: str
    task: str
    protocol: str
    synthetic: bool
    options: dict[str, Any] = field(default_factory=dict)
    inputs: Inputs | None = None
    seeded: bool = True  # the task takes a data.seed option
    real: bool = False  # needs $REGBENCH_DATA


# --- input files ------------------------------------------------------------------------------------------------------


def gb_inputs(dataset: str, lengths: tuple[int, int]) -> Inputs:
    """A Genomic Benchmarks cache layout with one within-train RC duplicate and one train/test overlap."""

    def write(folder: Path) -> dict[str, Any]:
        rng = np.random.default_rng(11)
        seqs = {
            split: {cls: [random_seqs(rng, 1, int(rng.integers(lengths[0], lengths[1] + 1)))[0] for _ in range(n)]
                    for cls in ("positive", "negative")}
            for split, n in (("train", 40), ("test", 12))
        }  # fmt: skip
        seqs["train"]["positive"].append(revcomp(seqs["train"]["positive"][0]))
        seqs["train"]["negative"].append(seqs["test"]["negative"][3])
        write_gb_layout(folder, seqs, dataset)
        return {"root": str(folder)}

    return write


def tsv_inputs(folder: Path) -> dict[str, Any]:
    """A variable-length `seq<TAB>label` file with an RC duplicate and a label-conflicting copy."""
    rng = np.random.default_rng(12)
    seqs = [random_seqs(rng, 1, int(rng.integers(40, 81)))[0] for _ in range(100)]
    rows = [(s, i % 2) for i, s in enumerate(seqs)] + [(revcomp(seqs[0]), 0), (seqs[1], 0)]
    (folder / "mine.tsv").write_text("seq\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    return {"train": str(folder / "mine.tsv")}


def fasta_inputs(folder: Path) -> dict[str, Any]:
    """One FASTA per class for train and for a given test set; one test sequence also in train."""
    rng = np.random.default_rng(13)
    records = {name: random_seqs(rng, n, 60) for name, n in (("pos", 30), ("neg", 30), ("tpos", 6), ("tneg", 6))}
    records["pos"].append(records["tpos"][0])
    for name, seqs in records.items():
        (folder / f"{name}.fa").write_text("".join(f">{name}{i}\n{s}\n" for i, s in enumerate(seqs)))
    return {"train": f"1:{folder}/pos.fa,0:{folder}/neg.fa", "test": f"1:{folder}/tpos.fa,0:{folder}/tneg.fa"}


def basset_inputs(folder: Path) -> dict[str, Any]:
    """A Basset-layout HDF5 file (`train_in (N, 4, 1, L)`, …, `target_labels`)."""
    return {"path": str(write_synthetic(folder / "encode_roadmap.h5", "basset", 300, 60, seed=0))}


def deepsea_inputs(folder: Path) -> dict[str, Any]:
    """A DeepSEA-layout bundle (train.mat v7.3, valid/test.mat v5), 1000 bp × 919 labels."""
    rng = np.random.default_rng(14)
    splits = {
        split: (rng.integers(0, 4, size=(n, 1000)).astype(np.uint8), (rng.random((n, 919)) < 0.2).astype(np.uint8))
        for split, n in (("train", 40), ("val", 20), ("test", 20))
    }
    write_deepsea_bundle(folder / "deepsea_train", splits)
    return {"dir": str(folder / "deepsea_train")}


def peak_inputs(folder: Path) -> dict[str, Any]:
    """A synthetic genome FASTA, planted-motif BED files and their sheet (`tasks._synthetic_peaks`)."""
    sheet = write_synthetic_peaks(folder, chrom_size=20_000, peaks_per_label=40)
    return {"genome": str(folder / "genome.fa"), "peaks": str(sheet), "negatives": 1.0, "window": 200}


# --- cases ------------------------------------------------------------------------------------------------------------

EPI_WINDOWS = {"enhancer_window": 100, "promoter_window": 80}
CHROMATIN_SYNTHETIC = "synthetic_blocks_train0.8_val0.1_test0.1_seed0"
CARVED = "stratified_holdout_test0.2_val0.1_seed0"
DEV_TSV = "dev_tsv_stratified_test0.2_val0.1_seed0"
OFFICIAL = "official_test+stratified_val0.1_seed0"

CASES = [
    Case("enhancers.synthetic", "enhancers.synthetic", "synthetic_stratified_test0.2_val0.1_seed0", True, {"n": 120}),
    Case("epi.synthetic", "epi.synthetic", "chromosome", True, EPI_WINDOWS),
    Case("epi.synthetic-random", "epi.synthetic", "random", True, {**EPI_WINDOWS, "split": "random"}),
    Case("chromatin.synthetic-deepsea", "chromatin.synthetic", CHROMATIN_SYNTHETIC, True,
         {"n": 300, "length": 60, "format": "deepsea"}),
    Case("chromatin.synthetic-basset", "chromatin.synthetic", CHROMATIN_SYNTHETIC, True,
         {"n": 300, "length": 60, "format": "basset"}),
    Case("chromatin.basset-file", "chromatin.basset", "official", False, inputs=basset_inputs, seeded=False),
    Case("activity.synthetic", "activity.synthetic", "random_train0.8_val0.1_test0.1_seed0", True, {"n": 100}),
    Case("chromatin.peaks-files", "chromatin.peaks", "chromosome_testchr8+chr9_valchr7", False, inputs=peak_inputs),
    Case("enhancers.files-tsv", "enhancers.files", CARVED, False, inputs=tsv_inputs),
    Case("enhancers.files-fasta", "enhancers.files", "given_test+stratified_val0.1_seed0", False, inputs=fasta_inputs),
    Case("enhancers.ensembl-layout", "enhancers.ensembl", OFFICIAL, False,
         inputs=gb_inputs("human_enhancers_ensembl", (50, 120))),
    Case("promoters.nontata-layout", "promoters.nontata", OFFICIAL, False,
         inputs=gb_inputs("human_nontata_promoters", (251, 251))),
    Case("enhancers.ienhancer2l", "enhancers.ienhancer2l", CARVED, False, real=True),
    Case("enhancers.ienhancer2l_strength", "enhancers.ienhancer2l_strength", CARVED, False, real=True),
    Case("enhancers.cohn-tsv", "enhancers.cohn", DEV_TSV, False, {"source": "tsv"}, real=True),
    Case("promoters.nontata-tsv", "promoters.nontata", DEV_TSV, False, {"source": "tsv"}, real=True),
    Case("epi.targetfinder_nhek", "epi.targetfinder_nhek", "chromosome", False, real=True),
    Case("chromatin.deepsea-bundle", "chromatin.deepsea", "official", False, inputs=deepsea_inputs, seeded=False,
         real=True),  # label names from $REGBENCH_DATA
]  # fmt: skip
NEED_GENOME = {f"epi.{key}" for key in epi.CELLS}  # sequences cut from hg19 (data.genome): not buildable offline


# --- building ---------------------------------------------------------------------------------------------------------


class Builds:
    """Tasks built once per module; each build gets its own cache folder, inputs are written once per case."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._options: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, Task] = {}
        self._whole: dict[str, dict[str, Batch]] = {}
        self._count = 0

    def options(self, case: Case) -> dict[str, Any]:
        if case.id not in self._options:
            extra = {}
            if case.inputs is not None:
                folder = self.root / "inputs" / case.id
                folder.mkdir(parents=True, exist_ok=True)
                extra = case.inputs(folder)
            self._options[case.id] = {**case.options, **extra}
        return self._options[case.id]

    def build(self, case: Case, **overrides: Any) -> Task:
        """A fresh build (new task object, new cache folder), splits loaded."""
        self._count += 1
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REGBENCH_CACHE", str(self.root / f"cache{self._count}"))
            task = make_task(case.task, {**self.options(case), **overrides})
            task.splits()
        return task

    def task(self, case: Case) -> Task:
        if case.id not in self._tasks:
            self._tasks[case.id] = self.build(case)
        return self._tasks[case.id]

    def whole(self, case: Case) -> dict[str, Batch]:
        """Every row of every split, as one batch per split."""
        if case.id not in self._whole:
            splits = self.task(case).splits()
            self._whole[case.id] = {name: ds.take(np.arange(len(ds))) for name, ds in splits.items()}
        return self._whole[case.id]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    return Builds(tmp_path_factory.mktemp("contract"))


@pytest.fixture(params=[pytest.param(c, id=c.id, marks=[pytest.mark.realdata] if c.real else []) for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    if request.param.real:
        request.getfixturevalue("real_data")  # skips (or fails in CI) without $REGBENCH_DATA
    return request.param


@pytest.fixture
def task(case: Case, builds: Builds) -> Task:
    return builds.task(case)


def branches(batch: Batch) -> list[tuple[np.ndarray, np.ndarray]]:
    """`(codes, mask)` per branch of a sequence batch."""
    return list(zip(batch.inputs[0::2], batch.inputs[1::2], strict=True))


def require_sequences(task: Task) -> None:
    if task.io.inputs == "features":
        pytest.skip(f"{task.name} is a feature task: it has no sequences")


# --- the contract -----------------------------------------------------------------------------------------------------


def test_declared_attributes(case: Case, task: Task) -> None:
    assert (task.name, task.split_protocol, task.synthetic) == (case.task, case.protocol, case.synthetic)
    assert isinstance(task.primary_metric, str) and task.primary_metric
    io = task.io
    assert isinstance(io, IOSpec)
    assert len(io.lengths) == {"seq": 1, "seq_pair": 2, "features": 1}[io.inputs]
    assert io.inputs != "features" or io.lengths == (0,)
    assert all(isinstance(n, int) and n >= 0 for n in io.lengths)
    assert io.target in ("binary", "multilabel", "regression")
    assert io.n_outputs == 1 or (io.target in ("multilabel", "regression") and io.n_outputs > 1)
    assert len(io.label_names) in (0, io.n_outputs)


def test_splits_are_train_val_test_and_non_empty(task: Task) -> None:
    splits = task.splits()
    assert sorted(splits) == sorted(SPLITS)
    for name, ds in splits.items():
        assert isinstance(ds, Dataset), name
        assert len(ds) > 0, f"{name} is empty"
        assert ds.ids.shape == (len(ds),) and len(ds.labels) == len(ds), name


def check_sequence_batch(ds: Dataset, idx: np.ndarray, batch: Batch, io: IOSpec) -> None:
    """Codes uint8 in 0..4, masks bool prefixes of each row's own length (a row taken alone), fixed widths kept."""
    assert len(batch.inputs) == 2 * io.n_branches
    singles = {int(i): branches(ds.take(np.array([i]))) for i in idx[:SINGLE_ROWS]}
    for b, ((codes, mask), fixed) in enumerate(zip(branches(batch), io.lengths, strict=True)):
        assert codes.dtype == np.uint8 and mask.dtype == np.bool_, f"branch {b}: {codes.dtype}, {mask.dtype}"
        assert codes.ndim == 2 and mask.shape == codes.shape == (len(idx), codes.shape[1]), f"branch {b}"
        assert codes.max(initial=0) <= N_CODE
        lengths = mask.sum(axis=1)
        assert (mask == (np.arange(codes.shape[1]) < lengths[:, None])).all(), f"branch {b}: mask is not a prefix"
        assert (codes[~mask] == N_CODE).all(), f"branch {b}: padding is not N"
        assert codes.shape[1] == (fixed or lengths.max()), f"branch {b}: width {codes.shape[1]}, io {fixed}"
        if fixed:
            assert (lengths == fixed).all(), f"branch {b}: lengths {set(lengths.tolist())} != io.lengths {fixed}"
        for row, i in enumerate(idx[:SINGLE_ROWS]):
            one_codes, one_mask = singles[int(i)][b]
            assert one_mask.all() and lengths[row] == one_codes.shape[1], f"branch {b}, row {i}"
            assert (codes[row, : lengths[row]] == one_codes[0]).all(), f"branch {b}, row {i}: codes differ"


def test_take_matches_io(task: Task, rng: np.random.Generator) -> None:
    io, widths = task.io, set()
    for name, ds in task.splits().items():
        idx = rng.permutation(len(ds))[:BATCH]  # unsorted
        batch = ds.take(idx)
        assert isinstance(batch, Batch)
        expected_y = (len(idx),) if io.target == "binary" or io.n_outputs == 1 else (len(idx), io.n_outputs)
        assert batch.y.dtype == np.float32 and batch.y.shape == expected_y, f"{name}: y {batch.y.dtype}{batch.y.shape}"
        assert np.array_equal(batch.y, np.asarray(ds.labels)[idx].astype(np.float32)), f"{name}: y != labels[idx]"
        if io.inputs == "features":
            (features,) = batch.inputs
            assert features.dtype == np.float32 and features.ndim == 2 and features.shape[0] == len(idx), name
            assert np.isfinite(features).all(), name
            widths.add(features.shape[1])
        else:
            check_sequence_batch(ds, idx, batch, io)
    assert len(widths) <= 1 and 0 not in widths, f"feature widths per split: {widths}"


def test_reverse_complement_keeps_shapes_and_reverses_the_masked_part(task: Task, rng: np.random.Generator) -> None:
    if task.io.inputs == "features":
        with pytest.raises(ValueError, match="reverse-complement"):
            task.splits()["train"].take(np.arange(2), reverse_complement=True)
        return
    for name, ds in task.splits().items():
        idx = rng.permutation(len(ds))[:BATCH]
        fwd, rev = ds.take(idx), ds.take(idx, reverse_complement=True)
        assert np.array_equal(fwd.y, rev.y), name
        for (codes, mask), (rc_codes, rc_mask) in zip(branches(fwd), branches(rev), strict=True):
            assert rc_codes.shape == codes.shape and rc_codes.dtype == np.uint8, name
            assert np.array_equal(rc_mask, mask), name
            for row, n in enumerate(mask.sum(axis=1)):
                assert (rc_codes[row, :n] == COMPLEMENT[codes[row, :n][::-1]]).all(), f"{name}: row {idx[row]}"
                assert (rc_codes[row, n:] == N_CODE).all(), f"{name}: row {idx[row]} padding"


def test_ids_are_unique_within_and_across_splits(task: Task) -> None:
    ids = {name: [str(i) for i in ds.ids] for name, ds in task.splits().items()}
    for name, values in ids.items():
        assert len(set(values)) == len(values), f"{name}: duplicate ids"
    for a, b in itertools.combinations(SPLITS, 2):
        shared = sorted(set(ids[a]) & set(ids[b]))
        assert not shared, f"{len(shared)} ids in both {a} and {b}: {shared[:10]}"


def as_seq_datasets(task: Task, whole: Mapping[str, Batch], branch: int | None = None) -> dict[str, SeqDataset]:
    """Whole-split batches → `SeqDataset`s for the duplicate audit (all branches, or only `branch`)."""
    out = {}
    for name, batch in whole.items():
        parts = branches(batch) if branch is None else [branches(batch)[branch]]
        seqs = tuple(Seqs(codes, mask.sum(axis=1).astype(np.int32)) for codes, mask in parts)
        out[name] = SeqDataset(seqs, batch.y, np.asarray(task.splits()[name].ids))
    return out


def test_no_sequence_in_two_splits(case: Case, task: Task, builds: Builds) -> None:
    """No sequence (either strand) in two splits; for pair tasks, no pair — and under a chromosome split, no
    single enhancer or promoter window either (a random split shares elements by design, see `tasks._epi_splits`)."""
    require_sequences(task)
    whole = builds.whole(case)
    report = duplicate_report(as_seq_datasets(task, whole))
    assert report.n_across == 0, "\n".join(report.lines())
    if task.io.n_branches == 2 and task.split_protocol == "chromosome":
        for b, role in enumerate(("enhancer", "promoter")):
            report = duplicate_report(as_seq_datasets(task, whole, b))
            assert report.n_across == 0, f"{role} windows in two splits:\n" + "\n".join(report.lines())


def test_digest_is_stable_and_follows_the_seed(case: Case, task: Task, builds: Builds) -> None:
    if not case.seeded:
        with pytest.raises(ConfigError, match=r"data\.seed"):
            make_task(case.task, {**builds.options(case), "seed": 1})
        pytest.skip(f"{case.task} has no data.seed option (fixed official splits)")
    digest = task.digest()
    assert isinstance(digest, str) and digest
    assert builds.build(case).digest() == digest, "two independent builds differ"
    other = builds.build(case, seed=int(builds.options(case).get("seed", 0)) + 1)
    assert other.digest() != digest, "data.seed does not change the digest"


def test_metrics_give_a_finite_primary_metric_on_random_scores(case: Case, task: Task, builds: Builds) -> None:
    y_true = builds.whole(case)["test"].y
    y_score = np.random.default_rng(1).random(y_true.shape)
    metrics = task.metrics(y_true, y_score)
    assert task.primary_metric in metrics, f"{task.primary_metric} not in {sorted(metrics)}"
    assert np.isfinite(float(metrics[task.primary_metric]))


def test_labels_match_the_target(task: Task) -> None:
    io = task.io
    for name, ds in task.splits().items():
        labels = np.asarray(ds.labels)
        if io.target == "regression":
            assert np.isfinite(labels).all() and labels.shape[0] == len(ds), f"{name}: {labels.shape}"
            assert np.unique(labels).size > 1, f"{name}: constant targets"
            continue
        assert np.isin(labels, (0, 1)).all(), f"{name}: labels outside {{0, 1}}"
        if io.target == "binary":
            assert labels.shape == (len(ds),), f"{name}: {labels.shape}"
            assert set(np.unique(labels).tolist()) == {0, 1}, f"{name}: one class only"
        else:
            assert labels.shape == (len(ds), io.n_outputs), f"{name}: {labels.shape}, n_outputs {io.n_outputs}"
    if io.target == "multilabel":
        assert np.asarray(task.splits()["train"].labels).any(), "no positive label in train"
        for group, idx in task.label_groups.items():
            assert len(idx) and min(idx) >= 0 and max(idx) < io.n_outputs, f"label group {group}: {idx}"


# --- coverage ---------------------------------------------------------------------------------------------------------


def test_every_registered_task_is_covered() -> None:
    load_plugins()
    assert set(TASKS.names()) == {c.task for c in CASES} | NEED_GENOME


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(NEED_GENOME))
def test_epi_cell_tasks_need_a_genome(name: str, real_data: Path) -> None:
    task = make_task(name)
    assert (task.name, task.split_protocol, task.synthetic) == (name, "chromosome", False)
    assert task.io == IOSpec("seq_pair", (3000, 2000), 1, "binary", ("interaction",))
    with pytest.raises(DataNotFoundError, match=r"data\.genome"):
        task.splits()
    pytest.skip(f"{name}: sequences are cut from hg19 (data.genome), not available offline; contract not checked")
