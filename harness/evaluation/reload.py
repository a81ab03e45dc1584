"""Scoring new sequences with a logged model: reload the predictor of a run, read input files, and tell when the
input overlaps the run's training split (`training_overlap`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data.datasets import SeqDataset, Seqs, sequence_branches
from harness.data.readers import SequenceFileError
from harness.spec import Predictor
from harness.tracking import store
from harness.tracking.logged_model import as_predictor


def model_run(run_id: str) -> str:
    """The run holding the model of `run_id`: itself (a `regbench train` run or a refit), or for a study cell its
    refit of the first evaluation seed (the seed the search ran with; tag `seeds` of the cell run)."""
    run = store.get_run(run_id)
    if run.info.lifecycle_stage == "deleted":
        raise LookupError(f"run {run_id} is deleted in {store.tracking_uri()}; restore it first "
                          f"(mlflow runs restore --run-id {run_id}) or pass another run")  # fmt: skip
    if run.data.tags.get("regbench.kind") != "cell":
        return run_id
    first = run.data.tags.get("seeds", run.data.tags.get("seed", "0")).split(",")[0]
    query = (f"tags.`{store.PARENT_TAG}` = '{run_id}' AND tags.`regbench.kind` = 'refit' AND tags.seed = '{first}' "
             "AND attributes.status = 'FINISHED'")  # fmt: skip
    refits = store.client().search_runs([run.info.experiment_id], query, order_by=["attributes.start_time DESC"])
    if not refits:
        raise LookupError(f"run {run_id} is a study cell without a finished refit of seed {first}: it has no model")
    return refits[0].info.run_id


def load_predictor(run_id: str, device: str = "auto") -> tuple[Predictor, dict[str, Any]]:
    """The predictor logged by `run_id` (a `regbench train` run, a refit, or a study cell: see `model_run`) and its
    metadata, rebuilt from weights / arrays without unpickling (a model in the old pickle format is refused,
    `UnsafeModelError`)."""
    run_id = model_run(run_id)
    meta = store.load_meta(run_id)
    return as_predictor(store.load_model(run_id, meta["kind"], meta), meta, device), meta


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
