"""The training loop on a small in-memory task: learning, early stopping, padding invariance, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import TrainConfig
from harness.data.datasets import SeqDataset, Seqs
from harness.data.split_task import SplitTask
from harness.evaluation.metrics import binary_metrics
from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.fit import _lr_lambda, fit
from harness.training.losses import _pos_weight
from tests.conftest import random_seqs

TINY_ATTENTION = {"k": 3, "d_model": 16, "head_dim": 16}
MOTIF = "TGACTCA"


def motif_task(rng: np.random.Generator, n: int = 300, variable: bool = False) -> SplitTask:
    """Positives carry the AP-1 motif at a random position; lengths vary when `variable`."""
    seqs, labels = [], []
    for i in range(n):
        length = int(rng.integers(40, 80)) if variable else 60
        seq = random_seqs(rng, 1, length)[0]
        if i % 2:
            pos = int(rng.integers(0, length - len(MOTIF)))
            seq = seq[:pos] + MOTIF + seq[pos + len(MOTIF) :]
        seqs.append(seq)
        labels.append(i % 2)
    ds = SeqDataset((Seqs.from_strings(seqs),), np.asarray(labels, np.float32), np.asarray([f"s{i}" for i in range(n)]))
    cut = np.arange(n)
    splits = {"train": ds.subset(cut[: n * 6 // 10]), "val": ds.subset(cut[n * 6 // 10 : n * 8 // 10]),
              "test": ds.subset(cut[n * 8 // 10 :])}  # fmt: skip
    io = IOSpec("seq", (0,) if variable else (60,), 1, "binary")
    return SplitTask("unit.motif", io, "auroc", "fixed", True, lambda: splits, binary_metrics)


@pytest.mark.slow
def test_fit_learns_and_restores_best_epoch(rng: np.random.Generator) -> None:
    task = motif_task(rng, n=600)
    rows: list[dict[str, float]] = []
    cfg = TrainConfig(max_epochs=10, batch_size=32, lr=5e-3, progress=False, patience=3)
    result = fit(task, get_model("kmer_attention"), {**get_model("kmer_attention").defaults, **TINY_ATTENTION}, cfg,
                 report=rows.append)  # fmt: skip
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert result.best_val == max(r["val_auroc"] for r in rows)
    assert rows[result.best_epoch - 1]["val_auroc"] == result.best_val
    val = task.splits()["val"]
    restored = binary_metrics(val.labels, result.predictor.score(val))["auroc"]
    assert restored == pytest.approx(result.best_val)
    assert result.best_val > 0.8  # the motif is learnable in a few epochs
    assert result.n_params > 0 and result.throughput > 0


def test_patience_stops_early(rng: np.random.Generator) -> None:
    task = motif_task(rng, n=120)
    cfg = TrainConfig(max_epochs=30, batch_size=32, lr=1e-9, progress=False, patience=1)  # nothing improves
    result = fit(task, get_model("kmer_attention"), {**get_model("kmer_attention").defaults, **TINY_ATTENTION}, cfg)
    assert result.epochs_run < 30


def test_scores_do_not_depend_on_batch_padding(rng: np.random.Generator) -> None:
    task = motif_task(rng, variable=True)
    cfg = TrainConfig(max_epochs=1, batch_size=32, progress=False, rc_tta=True)
    result = fit(task, get_model("kmer_attention"), {**get_model("kmer_attention").defaults, **TINY_ATTENTION}, cfg)
    test = task.splits()["test"]
    together = result.predictor.score(test)
    alone = np.array([result.predictor.score(test.subset(np.array([i])))[0] for i in range(len(test))])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_rc_augmentation_and_class_weights(rng: np.random.Generator) -> None:
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 1], np.float32)
    weight = _pos_weight(labels, "balanced", torch.device("cpu"))
    assert weight is not None and weight.tolist() == [3.0]
    assert _pos_weight(labels, "none", torch.device("cpu")) is None
    task = motif_task(rng, n=120)
    cfg = TrainConfig(max_epochs=1, batch_size=16, progress=False, rc_augment=True, class_weight="balanced")
    result = fit(task, get_model("kmer_attention"), {**get_model("kmer_attention").defaults, **TINY_ATTENTION}, cfg)
    assert np.isfinite(result.history[0]["train_loss"])


def test_warmup_then_cosine_schedule() -> None:
    factor = _lr_lambda(TrainConfig(warmup_frac=0.1, schedule="cosine"), total_steps=100)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(99) < 0.01
    linear = _lr_lambda(TrainConfig(warmup_frac=0.0, schedule="linear"), total_steps=10)
    assert linear(5) == pytest.approx(0.5)
