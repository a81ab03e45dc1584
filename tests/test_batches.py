"""The input pipeline: batches planned from the seed, built ahead in a thread, bucketed by length, wait logged."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from harness.config import TrainConfig
from harness.plugins import get_model
from harness.training.batches import EpochBatches, plan_epoch
from harness.training.fit import fit
from tests.test_train_loop import TINY_ATTENTION, motif_task


def _rows(batches: list) -> list[list[int]]:
    return [b.rows.tolist() for b in batches]


def test_plan_is_deterministic_and_covers_every_row(rng: np.random.Generator) -> None:
    train = motif_task(rng, n=200, variable=True).splits()["train"]  # 120 rows
    cfg = TrainConfig(batch_size=16, rc_augment=True)
    first = plan_epoch(train, cfg, np.random.default_rng(3))
    again = plan_epoch(train, cfg, np.random.default_rng(3))
    assert _rows(first) == _rows(again) and [b.reverse_complement for b in first] == [
        b.reverse_complement for b in again
    ]
    assert _rows(first) != _rows(plan_epoch(train, cfg, np.random.default_rng(4)))
    assert sorted(r for b in first for r in b.rows) == list(range(len(train)))
    assert any(b.reverse_complement for b in first) and not all(b.reverse_complement for b in first)


def test_length_buckets_reduce_padding(rng: np.random.Generator) -> None:
    train = motif_task(rng, n=400, variable=True).splits()["train"]  # 240 rows of 40-79 bp
    lengths = train.seqs[0].lengths

    def padding(cfg: TrainConfig) -> int:
        plan = plan_epoch(train, cfg, np.random.default_rng(0))
        assert sorted(r for b in plan for r in b.rows) == list(range(len(train)))
        return sum(int(lengths[b.rows].max() * len(b.rows) - lengths[b.rows].sum()) for b in plan)

    plain, bucketed = padding(TrainConfig(batch_size=8)), padding(TrainConfig(batch_size=8, length_buckets=True))
    assert bucketed < plain / 4


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetched_batches_equal_inline_ones(depth: int, rng: np.random.Generator) -> None:
    train = motif_task(rng, n=200, variable=True).splits()["train"]
    plan = plan_epoch(train, TrainConfig(batch_size=16, rc_augment=True), np.random.default_rng(0))
    with EpochBatches(train, plan, torch.device("cpu"), depth) as batches:
        got = list(batches)
    assert len(got) == len(plan)
    for batch, planned in zip(got, plan, strict=True):
        want = train.take(planned.rows, planned.reverse_complement)
        assert torch.equal(batch.inputs[0], torch.from_numpy(want.inputs[0]).long())
        assert torch.equal(batch.inputs[1], torch.from_numpy(want.inputs[1]))
        assert torch.equal(batch.target[:, 0], torch.from_numpy(want.y))
    assert batches.wait_s >= 0.0


def test_prefetch_thread_stops_when_the_step_fails(rng: np.random.Generator) -> None:
    train = motif_task(rng, n=200).splits()["train"]
    plan = plan_epoch(train, TrainConfig(batch_size=4), np.random.default_rng(0))  # 30 batches, queue of 2
    with pytest.raises(RuntimeError, match="step failed"), EpochBatches(train, plan, torch.device("cpu"), 2) as batches:
        for _ in batches:
            raise RuntimeError("step failed")
    assert not any(t.name == "regbench-batches" for t in threading.enumerate())


def test_a_failing_take_is_raised_in_the_training_thread(rng: np.random.Generator) -> None:
    train = motif_task(rng, n=60).splits()["train"]
    plan = plan_epoch(train, TrainConfig(batch_size=4), np.random.default_rng(0))

    class Broken:
        def take(self, idx: np.ndarray, rc: bool = False) -> None:
            raise OSError("cache file vanished")

    with pytest.raises(OSError, match="cache file vanished"), EpochBatches(Broken(), plan, torch.device("cpu"), 2) as b:  # type: ignore[arg-type]
        list(b)


def test_fit_is_the_same_with_and_without_prefetch_and_logs_data_wait(rng: np.random.Generator) -> None:
    task = motif_task(rng, n=120)
    plugin = get_model("kmer_attention")
    hp = {**plugin.defaults, **TINY_ATTENTION}
    runs = [fit(task, plugin, hp, TrainConfig(max_epochs=2, batch_size=16, progress=False, rc_augment=True,
                                              prefetch=depth)) for depth in (0, 2)]  # fmt: skip
    for a, b in zip(runs[0].history, runs[1].history, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["val_auroc"] == b["val_auroc"]
        assert 0.0 <= a["data_wait_fraction"] < 1.0 and 0.0 <= b["data_wait_fraction"] < 1.0
