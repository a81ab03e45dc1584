"""The training loop's input pipeline: an epoch's batches planned up front from the seed, built ahead of the step.

- `plan_epoch`: the epoch's batches as row indices (and reverse-complement flags) drawn from the loop's generator in
  the order the loop always drew them, so a seed gives the same batches with or without prefetching. Under
  `train.length_buckets` (the language models' default) rows are shuffled, cut into pools of `BUCKET_POOL` batches,
  sorted by length within a pool and the pool's batches shuffled: batches of similar length, so less padding.
- `EpochBatches`: a `Prefetcher` (a background thread and a queue of `train.prefetch` results) takes the rows from
  the dataset and makes the tensors (pinned on CUDA); the step copies them to the device with `non_blocking`. The
  time the step waits for its batch is `wait_s`; the epoch row logs it as `data_wait_fraction` (wait / epoch's
  training time). `train.prefetch=0` builds each batch in the step's own thread (the loop as it was).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np
import torch

from harness.config import TrainConfig
from harness.spec import Dataset
from harness.training.predictor import to_tensors
from harness.training.sampling import epoch_order, mask_bases

BUCKET_POOL = 50  # batches per length-sorted pool (a pool of 50 batches sorts 3,200 rows at batch size 64)


@dataclass(frozen=True)
class PlannedBatch:
    rows: np.ndarray  # (B,) sorted row indices into the split
    reverse_complement: bool
    counted: int = -1  # rows that count towards the loss (-1: all); a filler shard (`shard`) counts none
    weight: float = 1.0  # loss multiplier that makes data-parallel gradients those of the whole batch (`shard`)
    mask_prob: float = 0.0  # `train.mask_prob`: bases set to N with this probability (`sampling.mask_bases`)
    mask_seed: int = 0  # seeds that masking's own generator, drawn when planning (so prefetching keeps it seeded)


@dataclass
class DeviceBatch:
    """A batch on the training device: `inputs` as `to_tensors`, `target (B, n_outputs)` float32; `counted` rows
    count towards the epoch's loss, whose gradient is scaled by `weight` (see `shard`)."""

    inputs: list[torch.Tensor]
    target: torch.Tensor
    counted: int
    weight: float


def row_lengths(dataset: Dataset) -> np.ndarray | None:
    """Per row the longest of its branches' lengths `(N,)`, or None for a dataset without sequences."""
    branches = getattr(dataset, "seqs", ())
    if not branches:
        return None
    return np.max(np.stack([b.lengths for b in branches]), axis=0)


def plan_epoch(dataset: Dataset, cfg: TrainConfig, rng: np.random.Generator) -> list[PlannedBatch]:
    """The epoch's batches over the rows `train.sampler` visits (`sampling.epoch_order`); draws from `rng` exactly
    as the loop did before batches were planned (plus one masking seed per batch under `train.mask_prob`)."""
    order = epoch_order(dataset.labels, cfg.sampler, rng)
    steps = math.ceil(len(order) / cfg.batch_size)
    lengths = row_lengths(dataset) if cfg.length_buckets else None
    if lengths is None:
        chunks = np.array_split(order, steps)
    else:
        chunks = []
        pool = BUCKET_POOL * cfg.batch_size
        for start in range(0, len(order), pool):
            rows = order[start : start + pool]
            rows = rows[np.argsort(lengths[rows], kind="stable")]
            chunks += [rows[i : i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    plan = []
    for rows in chunks:
        flip = cfg.rc_augment and bool(rng.integers(2))
        seed = int(rng.integers(2**63)) if cfg.mask_prob > 0 else 0
        plan.append(PlannedBatch(np.sort(rows), flip, mask_prob=cfg.mask_prob, mask_seed=seed))
    return plan


def shard(plan: list[PlannedBatch], rank: int, world: int) -> list[PlannedBatch]:
    """Rank `rank`'s part of each batch of `plan` for data-parallel training on `world` workers: every `world`-th
    row, with loss weight `n_rank · world / n`, so that the gradient DDP averages over ranks is the gradient of the
    whole batch's mean loss. A rank left without rows (a batch smaller than `world`) steps on one filler row with
    weight 0, since every rank must join each gradient all-reduce."""
    if world == 1:
        return plan
    out = []
    for batch in plan:
        rows = batch.rows[rank::world]
        if len(rows):
            out.append(replace(batch, rows=rows, counted=len(rows), weight=len(rows) * world / len(batch.rows)))
        else:
            out.append(replace(batch, rows=batch.rows[:1], counted=0, weight=0.0))
    return out


def _host_batch(dataset: Dataset, planned: PlannedBatch, pin: bool) -> DeviceBatch:
    """The rows as CPU tensors (uint8 codes as int64), pinned when `pin`."""
    batch = dataset.take(planned.rows, planned.reverse_complement)
    batch = mask_bases(batch, planned.mask_prob, np.random.default_rng(planned.mask_seed))
    inputs = to_tensors(batch.inputs, torch.device("cpu"))
    target = torch.from_numpy(batch.y).float().reshape(len(batch.y), -1)
    if pin:
        inputs, target = [t.pin_memory() for t in inputs], target.pin_memory()
    counted = len(planned.rows) if planned.counted < 0 else planned.counted
    return DeviceBatch(inputs, target, counted, planned.weight)


def _to_device(batch: DeviceBatch, device: torch.device) -> DeviceBatch:
    if device.type == "cpu":
        return batch
    non_blocking = device.type == "cuda"  # from pinned memory: the copy overlaps the step's work
    return DeviceBatch([t.to(device, non_blocking=non_blocking) for t in batch.inputs],
                       batch.target.to(device, non_blocking=non_blocking), batch.counted, batch.weight)  # fmt: skip


_DONE = object()
T = TypeVar("T")
B = TypeVar("B")


class Prefetcher(Generic[T, B]):
    """Iterate `make(item)` for each of `items`, made `depth` ahead in a background thread (`depth=0`: made in the
    caller's thread). Use as a context manager: leaving it early stops the thread; an error in `make` is raised in
    the caller. `wait_s` is the time the caller spent waiting for the results."""

    def __init__(self, items: Sequence[T], make: Callable[[T], B], depth: int) -> None:
        self.items, self.make, self.depth = items, make, depth
        self.wait_s = 0.0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Prefetcher[T, B]:
        if self.depth > 0:
            self._thread = threading.Thread(target=self._produce, name="regbench-batches", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    self._thread.join(timeout=0.05)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self.items:
                if not self._put(self.make(item)):
                    return
            self._put(_DONE)
        except BaseException as err:  # handed to the caller's thread, which raises it
            self._put(err)

    def __iter__(self) -> Iterator[B]:
        if self._thread is None:
            for item in self.items:
                start = time.perf_counter()
                made = self.make(item)
                self.wait_s += time.perf_counter() - start
                yield made
            return
        while True:
            start = time.perf_counter()
            made = self._queue.get()
            self.wait_s += time.perf_counter() - start
            if isinstance(made, BaseException):
                raise made
            if made is _DONE:
                return
            yield made  # type: ignore[misc]


class EpochBatches:
    """The epoch's `DeviceBatch`es of `plan` on `device`: built on the host by a `Prefetcher` of `depth`, then copied
    to the device (`non_blocking` from pinned memory on CUDA). `wait_s`: time the step waited for its batch."""

    def __init__(self, dataset: Dataset, plan: list[PlannedBatch], device: torch.device, depth: int) -> None:
        pin = device.type == "cuda"
        self.device = device
        self.host = Prefetcher(plan, lambda planned: _host_batch(dataset, planned, pin), depth)
        self.wait_s = 0.0

    def __enter__(self) -> EpochBatches:
        self.host.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.host.__exit__(kind, err, tb)

    def __iter__(self) -> Iterator[DeviceBatch]:
        copy_s = 0.0
        for batch in self.host:
            start = time.perf_counter()
            on_device = _to_device(batch, self.device)
            copy_s += time.perf_counter() - start
            self.wait_s = self.host.wait_s + copy_s
            yield on_device
