"""harness.training.sampling: balanced epochs hold the classes equally, random masking hits real training bases
only, and through `fit` both touch the training split only (validation and test batches arrive unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.modules.module import register_module_forward_pre_hook

from harness.config import ConfigError, TrainConfig
from harness.data.datasets import FeatureDataset, SeqDataset, Seqs
from harness.data.encode import N_CODE
from harness.data.split_task import SplitTask
from harness.evaluation.metrics import binary_metrics
from harness.plugins import get_model
from harness.spec import Batch, IOSpec
from harness.training.fit import fit
from harness.training.sampling import epoch_order, epoch_size, mask_bases
from models.kmer_attention import KmerAttentionEncoder
from tests.conftest import random_seqs


def test_balanced_binary_epoch_holds_the_classes_equally(rng: np.random.Generator) -> None:
    labels = (np.arange(100) < 13).astype(np.float32)  # 13 positives, 87 negatives
    order = epoch_order(labels, "balanced", rng)
    assert len(order) == epoch_size(labels, "balanced") == 174
    assert labels[order].sum() == 87  # as many positives as negatives
    negatives = order[labels[order] == 0]
    assert sorted(negatives) == list(range(13, 100))  # the majority class: every row once
    assert set(order[labels[order] == 1]) == set(range(13))  # every minority row at least once
    assert sorted(epoch_order(labels, "uniform", rng)) == list(range(100))
    assert epoch_size(labels, "uniform") == 100
    one_class = np.zeros(10, np.float32)
    assert sorted(epoch_order(one_class, "balanced", rng)) == list(range(10))


def test_balanced_multilabel_draws_rare_labels_as_often_as_common(rng: np.random.Generator) -> None:
    y = np.zeros((2000, 3), np.uint8)
    y[:1000, 0] = 1  # common
    y[1000:1040, 1] = 1  # rare
    y[1040:1100, 2] = 1  # rare
    drawn = y[np.concatenate([epoch_order(y, "balanced", rng) for _ in range(5)])]
    per_label = drawn.sum(0) / len(drawn)
    none = (~drawn.any(1)).mean()
    np.testing.assert_allclose([*per_label, none], 0.25, atol=0.03)
    assert y.sum(0)[1] / len(y) == 0.02  # 12 × rarer before


def test_masking_hits_real_bases_only_and_copies(rng: np.random.Generator) -> None:
    data = SeqDataset((Seqs.from_strings(random_seqs(rng, 40, 300)[:20] + random_seqs(rng, 20, 150)),),
                      np.zeros(40, np.float32), np.array([f"s{i}" for i in range(40)]))  # fmt: skip
    batch = data.take(np.arange(40))
    codes, mask = batch.inputs
    before = codes.copy()
    masked = mask_bases(batch, 0.2, rng)
    new = masked.inputs[0]
    assert np.array_equal(codes, before)  # the dataset's batch is untouched
    hit = new != codes
    assert np.all(new[hit] == N_CODE) and not hit[~mask].any()
    assert hit.sum() / mask.sum() == pytest.approx(0.2, abs=0.02)
    assert mask_bases(batch, 0.0, rng) is batch
    table = FeatureDataset(rng.random((5, 3)).astype(np.float32), np.zeros(5, np.float32), np.arange(5).astype(str))
    features = table.take(np.arange(5))
    assert np.array_equal(mask_bases(features, 0.5, rng).inputs[0], features.inputs[0])


def test_bad_settings_fail_clearly() -> None:
    with pytest.raises(ConfigError, match=r"train\.sampler='oversample'"):
        TrainConfig(sampler="oversample")
    with pytest.raises(ConfigError, match=r"train\.mask_prob=1"):
        TrainConfig(mask_prob=1.0)


class Recording(SeqDataset):
    """A real in-memory split that keeps every batch it hands out (to see what training and scoring read)."""

    def __init__(self, base: SeqDataset) -> None:
        super().__init__(base.seqs, base.labels, base.ids)
        self.batches: list[Batch] = []

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch:
        batch = super().take(idx, reverse_complement)
        self.batches.append(batch)
        return batch


def test_fit_masks_and_balances_the_training_split_only(rng: np.random.Generator) -> None:
    n = 200
    labels = (np.arange(n) % 5 == 0).astype(np.float32)  # 20 % positives
    ds = SeqDataset((Seqs.from_strings(random_seqs(rng, n, 50)),), labels, np.array([f"s{i}" for i in range(n)]))
    splits = {name: Recording(ds.subset(np.arange(lo, hi))) for name, lo, hi in
              (("train", 0, 120), ("val", 120, 160), ("test", 160, 200))}  # fmt: skip
    task = SplitTask("unit.imbalanced", IOSpec("seq", (50,), 1, "binary"), "auroc", "fixed", True, lambda: splits,
                     binary_metrics)  # fmt: skip
    plugin = get_model("kmer_attention")
    cfg = TrainConfig(max_epochs=1, batch_size=32, progress=False, mask_prob=0.25, sampler="balanced")
    seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}  # training mode → (codes, mask) the encoder got

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if isinstance(module, KmerAttentionEncoder):
            seen[module.training].append(inputs[0][inputs[1]])  # real positions' codes

    hook = register_module_forward_pre_hook(record)
    try:
        result = fit(task, plugin, {**plugin.defaults, **plugin.tiny}, cfg)
        result.predictor.score(splits["test"])
    finally:
        hook.remove()
    train_y = np.concatenate([b.y for b in splits["train"].batches])
    assert len(train_y) == 2 * 96 and train_y.sum() == 96  # one balanced epoch: 96 negatives, 96 positives
    trained_on = torch.cat(seen[True])
    assert (trained_on == N_CODE).float().mean().item() == pytest.approx(0.25, abs=0.02)
    scored = torch.cat(seen[False])  # validation and test, as stored (no N in these random sequences)
    assert len(scored) == 40 * 50 * 2 and not (scored == N_CODE).any()  # val once (epoch 1) and test once
    assert sum(len(b.y) for b in splits["val"].batches) == 40 and sum(len(b.y) for b in splits["test"].batches) == 40
