"""The task contract of `harness/spec.py`, checked on every task that can be built offline.

Cases: the synthetic tasks, `enhancers.files` and the Genomic Benchmarks loader on files written here,
`chromatin.basset` / `chromatin.deepsea` on small files in their real formats, and (with `$REGBENCH_DATA`) the real
iEnhancer-2L, Cohn / non-TATA dev TSVs and the TargetFinder NHEK feature table. `epi.<cell>` tasks need hg19, which
is not available offline: only their declaration and the missing-genome error are checked.

Each task is built once per module (inputs and caches under a module tmp folder); the digest test builds it again
from a fresh cache, and once more with another `data.seed`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import random_seqs
from test_enhancer_tasks import write_gb_layout

from harness.config import ConfigError
from harness.contract import ContractError
from harness.contract import task_checks as tc
from harness.paths import DataNotFoundError
from harness.plugins import TASKS, load_plugins, make_task
from harness.spec import Batch, IOSpec, Task
from tasks import epi
from tasks._chromatin_formats import write_deepsea_bundle
from tasks._synthetic_chromatin import write_synthetic
from tasks._synthetic_enhancers import revcomp
from tasks._synthetic_peaks import write_synthetic_peaks

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
            self._whole[case.id] = tc.whole_batches(self.task(case))
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


def require_sequences(task: Task) -> None:
    if task.io.inputs == "features":
        pytest.skip(f"{task.name} is a feature task: it has no sequences")


# --- the contract (checks in harness.contract.task_checks, shared with `regbench plugin check`) -----------------------


def test_declared_attributes(case: Case, task: Task) -> None:
    assert (task.name, task.split_protocol, task.synthetic) == (case.task, case.protocol, case.synthetic)
    tc.check_declared(task)


def test_splits_are_train_val_test_and_non_empty(task: Task) -> None:
    tc.check_splits(task)


def test_take_matches_io(task: Task, rng: np.random.Generator) -> None:
    tc.check_arrays(task, rng)


def test_reverse_complement_keeps_shapes_and_reverses_the_masked_part(task: Task, rng: np.random.Generator) -> None:
    tc.check_reverse_complement(task, rng)


def test_ids_are_unique_within_and_across_splits(task: Task) -> None:
    tc.check_ids(task)


def test_no_sequence_in_two_splits(case: Case, task: Task, builds: Builds) -> None:
    """No sequence (either strand) in two splits; for pair tasks, no pair — and under a chromosome split, no
    single enhancer or promoter window either (a random split shares elements by design, see `tasks._epi_splits`)."""
    require_sequences(task)
    tc.check_disjoint(task, builds.whole(case))


def test_digest_is_stable_and_follows_the_seed(case: Case, task: Task, builds: Builds) -> None:
    if not case.seeded:
        with pytest.raises(ConfigError, match=r"data\.seed"):
            make_task(case.task, {**builds.options(case), "seed": 1})
        pytest.skip(f"{case.task} has no data.seed option (fixed official splits)")
    tc.check_digest(task, lambda: builds.build(case))  # non-empty, equal for two independent builds
    other = builds.build(case, seed=int(builds.options(case).get("seed", 0)) + 1)
    assert other.digest() != task.digest(), "data.seed does not change the digest"


def test_metrics_give_a_finite_primary_metric_on_random_scores(case: Case, task: Task, builds: Builds) -> None:
    tc.check_metrics(task, builds.whole(case))


def test_labels_match_the_target(task: Task) -> None:
    tc.check_labels(task)


def test_a_broken_task_fails_the_check_at_fault(builds: Builds) -> None:
    """Guards the shared checks against passing vacuously: a test split that repeats a training row (reverse
    complemented) fails the disjoint check naming both ids; a repeated id fails the ids check."""
    task = builds.task(CASES[0])  # enhancers.synthetic
    splits = task.splits()
    train, test = splits["train"], splits["test"]
    leaked = test.subset(np.arange(len(test)))
    leaked.seqs[0].codes[0] = tc.COMPLEMENT[train.seqs[0].codes[0][::-1]]
    broken = SimpleNamespace(name=task.name, io=task.io, split_protocol=task.split_protocol,
                             splits=lambda: {**splits, "test": leaked})  # fmt: skip
    whole = tc.whole_batches(broken)
    with pytest.raises(ContractError, match=re.escape(f"train ∩ test: 1 shared, e.g. {train.ids[0]} == {test.ids[0]}")):
        tc.check_disjoint(broken, whole)
    renamed = test.subset(np.arange(len(test)))
    renamed.ids[1] = renamed.ids[0]
    broken.splits = lambda: {**splits, "test": renamed}
    with pytest.raises(ContractError, match=re.escape(f"test: duplicate ids ['{test.ids[0]}']")):
        tc.check_ids(broken)


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
