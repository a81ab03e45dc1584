"""Scoring new sequences with a logged model: reload the predictor of a run, read input files, and tell when the
input overlaps the run's training split (`training_overlap`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.data.datasets import SeqDataset, Seqs, sequence_branches
from harness.data.readers import SequenceFileError, check_file, read_fasta, read_tsv
from harness.spec import Predictor
from harness.tracking import store
from harness.tracking.logged_model import as_predictor


def load_predictor(run_id: str, device: str = "auto") -> tuple[Predictor, dict[str, Any]]:
    """The predictor logged by `run_id` (a `regbench train` run or a study's parent run) and its metadata, rebuilt
    from weights / arrays without unpickling (a model in the old pickle format is refused, `UnsafeModelError`)."""
    meta = store.load_meta(run_id)
    return as_predictor(store.load_model(run_id, meta["kind"]), meta, device), meta


def read_input(path: str | Path, labelled: bool) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """`(ids, sequences, labels or None)` from a FASTA (ids = headers) or a TSV (`seq[<TAB>label]`, ids = row numbers).

    FASTA input has no labels; `labelled=True` requires a TSV `seq<TAB>label`.
    """
    path = check_file(Path(path), "input file")
    with path.open(encoding="latin-1") as handle:
        first = next((line for line in handle if line.strip()), "")
    if first.startswith(">"):
        if labelled:
            raise SequenceFileError(f"{path}: FASTA has no labels; give a TSV with columns seq<TAB>label")
        records = read_fasta(path)
        return np.asarray([r for r, _ in records]), [s for _, s in records], None
    if labelled:
        data = read_tsv(path)
        return np.arange(1, len(data.seqs) + 1).astype(str), data.seqs, data.labels.astype(np.float32)
    seqs = [line.split("\t")[0].strip().upper() for line in path.read_text(encoding="latin-1").splitlines()]
    seqs = [s for s in seqs if s]
    if seqs and seqs[0] in ("SEQ", "SEQUENCE"):
        seqs = seqs[1:]
    if not seqs:
        raise SequenceFileError(f"{path}: no sequences found")
    return np.arange(1, len(seqs) + 1).astype(str), seqs, None


def single_sequence_dataset(
    ids: np.ndarray, seqs: list[str], labels: np.ndarray | None, meta: dict[str, Any], source: str
) -> SeqDataset:
    """A dataset for a single-sequence model; checks the model's fixed input length, if it has one."""
    io = meta["io"]
    if io["inputs"] != "seq":
        raise ValueError(
            f"run was trained on task {meta['task']} with {io['inputs']} inputs; predict and evaluate read single "
            "sequences only"
        )
    fixed = int(io["lengths"][0])
    if fixed:
        bad = next((i for i, s in enumerate(seqs) if len(s) != fixed), None)
        if bad is not None:
            raise ValueError(
                f"{source}: sequence {ids[bad]} has length {len(seqs[bad])}, but the model was trained on "
                f"task {meta['task']} with fixed length {fixed}"
            )
    try:
        branch = Seqs.from_strings(seqs)
    except ValueError as err:
        raise SequenceFileError(f"{source}: {err}") from None
    y = labels if labels is not None else np.zeros(len(seqs), np.float32)
    return SeqDataset((branch,), y, ids)


MAX_TRAIN_ROWS = 2_000_000  # larger training splits are not rebuilt for the overlap check (minutes of work)


def training_overlap(run_id: str, meta: dict[str, Any], seqs: Seqs) -> str | None:
    """A one-line warning when some of `seqs` (either strand) are in the run's training split, else None.

    The run logs no sequences, only the task, its data settings (`meta["data"]`) and the digest of the task's
    splits (tag `dataset_digest`), so the training split is rebuilt from the task and settings as training built
    it, and used only when its digest matches the run's (same data, same split); otherwise, when the data cannot
    be loaded here, or when the split is larger than `MAX_TRAIN_ROWS`, nothing is checked (None)."""
    from harness.plugins import make_task

    logged = store.client().get_run(run_id).data.tags.get("dataset_digest")
    try:
        task = make_task(meta["task"], meta.get("data", {}))
        train = task.splits()["train"]
        if not logged or len(train) > MAX_TRAIN_ROWS or task.digest() != logged:
            return None
        known = set(sequence_branches(train)[0].canonical_digests())
    except Exception:  # data missing or unreadable here: the check is a courtesy, scoring goes on
        return None
    hits = sum(d in known for d in seqs.canonical_digests())
    if not hits:
        return None
    return (
        f"warning: {hits:,} of {len(seqs):,} input sequences ({hits / len(seqs):.0%}) are in the training split "
        f"of run {run_id} ({meta['task']}, either strand); their scores overestimate performance on new data"
    )
