"""The training loop (plain PyTorch, or a plugin's sklearn `fit_sklearn`), early-stopping on validation.

The loop never touches MLflow: it calls `report(row)` once per epoch. A torch fit is three small pieces:
`_train_epoch` (one pass over shuffled training batches), `_validation_row` (the epoch's metrics on val) and
`_EarlyStopping` (keeps the best epoch's weights and decides when to stop).
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from harness.config import ConfigError, TrainConfig
from harness.spec import Dataset, ModelPlugin, Predictor, Task
from harness.training.batches import DeviceBatch, EpochBatches, plan_epoch, shard
from harness.training.distributed import data_parallel, over_ranks, rank_and_world, sum_over_ranks
from harness.training.losses import loss_function, output_link
from harness.training.modeling import SequenceClassifier, build_model
from harness.training.precision import amp_dtype, autocast, compiled
from harness.training.predictor import TorchPredictor
from harness.training.resources import peak_rss_mb
from harness.training.sampling import epoch_size

Report = Callable[[dict[str, float]], None]


@dataclass
class FitResult:
    predictor: Predictor
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = float("nan")
    n_params: int = 0
    train_seconds: float = 0.0
    throughput: float = float("nan")  # training sequences per second
    epochs_run: int = 0
    model_metrics: dict[str, float] = field(default_factory=dict)  # the encoder's `run_metrics()`


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but no CUDA device is available; use train.device=cpu or auto")
    return device


SMALL_MACHINE_CORES = 2


def default_threads() -> int:
    """Torch intra-op threads when `train.threads=0`: one on machines with at most `SMALL_MACHINE_CORES` cores, else
    torch's own default. `bench/threads.py` on the 2-core development machine (shared, load 11-15): one thread trains
    kmer_attention 7.5x, basset 4x and tiny basset 28x faster than two, and scores 2-5x faster; kmer_logreg (sklearn)
    is unaffected. Larger machines were not measured, so they keep torch's setting. A study's trials pin
    `train.threads` to `cpus_per_trial` either way."""
    return 1 if (os.cpu_count() or 1) <= SMALL_MACHINE_CORES else torch.get_num_threads()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def fit(
    task: Task,
    plugin: ModelPlugin,
    hp: Mapping[str, Any],
    cfg: TrainConfig,
    report: Report | None = None,
    splits: Mapping[str, Dataset] | None = None,
) -> FitResult:
    """Train `plugin` with hyperparameters `hp` on the train split (`splits`, default the task's own), early-stopping
    on val.

    Calls `report({"epoch", "train_loss", "val_<metric>"...})` after every epoch; restores the best epoch. On
    several workers every rank calls its own `report` after the same epochs (Ray Train's `report` is a barrier
    that each rank must reach); rank 0's is the one that logs.
    """
    splits = splits if splits is not None else task.splits()
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.threads or default_threads())
    if not plugin.is_torch:
        return _fit_sklearn(task, plugin, hp, splits, report)
    device = resolve_device(cfg.device)
    model = build_model(plugin, task.io, hp).to(device)
    rank, world = rank_and_world()
    if world > 1:  # same initial weights on every rank; then each rank draws its own dropout masks
        torch.manual_seed(cfg.seed + rank)
    return _fit_torch(task, model, cfg, splits, device, report)


def _fit_sklearn(
    task: Task, plugin: ModelPlugin, hp: Mapping[str, Any], splits: Mapping[str, Dataset], report: Report | None
) -> FitResult:
    assert plugin.fit_sklearn is not None
    start = time.perf_counter()
    estimator: Predictor = plugin.fit_sklearn(splits["train"], splits["val"], task.io, **hp)
    seconds = time.perf_counter() - start
    val = {f"val_{k}": v for k, v in task.metrics(splits["val"].labels, estimator.score(splits["val"])).items()}
    row = {"epoch": 1.0, **val}
    if report:
        report(row)
    return FitResult(
        predictor=estimator,
        history=[row],
        best_epoch=1,
        best_val=val[f"val_{task.primary_metric}"],
        n_params=int(estimator.n_params),
        train_seconds=seconds,
        throughput=len(splits["train"]) / max(seconds, 1e-9),
        epochs_run=1,
    )


@dataclass
class _Optimisation:
    """What one training step needs besides the model and the batch."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_fn: nn.Module
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None  # autocast dtype (`train.amp`), None for fp32
    step_model: nn.Module  # the model the training step calls: DDP-wrapped on several workers, compiled if asked


def _lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warmup = int(cfg.warmup_frac * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 1.0

    return factor


def _parameter_groups(model: SequenceClassifier, lr: float) -> list[dict[str, Any]]:
    """The encoder's own groups (`Encoder.param_groups`), then every other trainable parameter at `lr`."""
    groups = [g for g in model.encoder.param_groups(lr) if g["params"]]
    grouped = {id(p) for g in groups for p in g["params"]}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in grouped]
    return [*groups, {"params": rest, "lr": lr}]


def adamw(params: Iterable[Any], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """The optimiser `fit` trains with: AdamW, fused (one kernel for the whole update instead of several per
    parameter tensor; basset's 4.1 M parameters on one CPU thread: 22 ms → 3 ms a step, paid by every rank of a
    data-parallel run; `bench/optimizer.py`)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def _optimisation(
    model: nn.Module, cfg: TrainConfig, target: str, labels: np.ndarray, steps: int, device: torch.device
) -> _Optimisation:
    optimizer = adamw(_parameter_groups(model, cfg.lr), cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, steps))
    dtype = amp_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    loss_fn = loss_function(target, cfg.loss, labels, cfg.class_weight, device)
    step_model = compiled(data_parallel(model, rank_and_world()[1]), cfg.compile)
    return _Optimisation(optimizer, scheduler, loss_fn, scaler, dtype, step_model)


def _train_epoch(
    task: Task,
    model: SequenceClassifier,
    train: Dataset,
    opt: _Optimisation,
    cfg: TrainConfig,
    rng: np.random.Generator,
    epoch: int,
    bar: tqdm,
) -> tuple[float, int, float]:
    """One pass over shuffled training batches (built ahead: `harness.training.batches`); returns (summed loss ×
    batch size, sequences seen, seconds the step waited for its batches)."""
    model.train()
    device = next(model.parameters()).device
    total_loss, seen = 0.0, 0
    rank, world = rank_and_world()
    with EpochBatches(train, shard(plan_epoch(train, cfg, rng), rank, world), device, cfg.prefetch) as batches:
        for b, batch in enumerate(batches):
            loss = _train_step(task, model, batch, opt, cfg, epoch, b)
            total_loss += loss * batch.counted
            seen += batch.counted
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", refresh=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    total_loss, all_seen = sum_over_ranks([total_loss, float(seen)], world)
    return total_loss, int(all_seen), batches.wait_s


def _rank_resources(device: torch.device, data_wait_fraction: float) -> dict[str, float]:
    """This rank's resources so far, for `over_ranks`: its peak RSS, its data wait, its peak CUDA memory."""
    values = {"peak_rss_mb": peak_rss_mb(), "data_wait_fraction": data_wait_fraction}
    if device.type == "cuda":
        values["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return values


def _train_step(
    task: Task, model: SequenceClassifier, batch: DeviceBatch, opt: _Optimisation, cfg: TrainConfig, epoch: int, b: int
) -> float:
    """One optimiser step on `batch`; returns its loss."""
    with autocast(batch.target.device, opt.dtype):
        loss = opt.loss_fn(opt.step_model(*batch.inputs).float(), batch.target)
        aux = model.aux_loss()
        if aux is not None:
            loss = loss + aux.float()
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"{task.name}: non-finite training loss at epoch {epoch}, batch {b}; lower train.lr "
            f"(now {cfg.lr}) or enable train.grad_clip"
        )
    opt.optimizer.zero_grad(set_to_none=True)
    opt.scaler.scale(loss * batch.weight if batch.weight != 1.0 else loss).backward()
    if cfg.grad_clip > 0:
        opt.scaler.unscale_(opt.optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.scaler.step(opt.optimizer)
    opt.scaler.update()
    opt.scheduler.step()
    return loss.item()


def _validation_row(
    task: Task, predictor: TorchPredictor, val: Dataset, epoch: int, loss: float, seconds: float, lr: float
) -> dict[str, float]:
    """The epoch's report row: training loss and time, learning rate, and every task metric on val."""
    metrics = task.metrics(val.labels, predictor.score(val))
    return {"epoch": float(epoch), "train_loss": loss, "epoch_time_s": seconds, "lr": lr,
            **{f"val_{k}": v for k, v in metrics.items()}}  # fmt: skip


class _EarlyStopping:
    """Keeps the weights of the best validation score; `stop` after `patience` epochs without improvement."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_val, self.best_epoch, self.stale = float("nan"), 0, 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, model: nn.Module, score: float, epoch: int) -> None:
        improved = np.isfinite(score) and (not np.isfinite(self.best_val) or score > self.best_val)
        if self.best_state is None or improved:
            self.best_val, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1

    @property
    def stop(self) -> bool:
        return bool(self.patience) and self.stale >= self.patience


def _fit_torch(
    task: Task,
    model: SequenceClassifier,
    cfg: TrainConfig,
    splits: Mapping[str, Dataset],
    device: torch.device,
    report: Report | None,
) -> FitResult:
    train, val = splits["train"], splits["val"]
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"task {task.name}: empty train ({len(train)}) or val ({len(val)}) split")
    if task.io.target == "regression" and cfg.sampler == "balanced":
        raise ConfigError(f"train.sampler=balanced needs class labels; {task.name} has regression targets")
    steps_per_epoch = math.ceil(epoch_size(train.labels, cfg.sampler) / cfg.batch_size)
    opt = _optimisation(model, cfg, task.io.target, train.labels, steps_per_epoch * cfg.max_epochs, device)
    link = output_link(task.io.target, cfg.loss)
    predictor = TorchPredictor(model, cfg.eval_batch_size, cfg.rc_tta, str(device), cfg.amp, link)
    rng = np.random.default_rng(cfg.seed)
    primary = f"val_{task.primary_metric}"
    result = FitResult(predictor=predictor, n_params=predictor.n_params, model_metrics=model.encoder.run_metrics())
    stopping = _EarlyStopping(cfg.patience)
    seen, train_time = 0, 0.0
    quiet = not cfg.progress or rank_and_world()[0] > 0  # one progress bar: rank 0's
    bar = tqdm(total=cfg.max_epochs * steps_per_epoch, disable=quiet, desc=task.name, unit="batch")
    for epoch in range(1, cfg.max_epochs + 1):
        start = time.perf_counter()
        loss, n, wait = _train_epoch(task, model, train, opt, cfg, rng, epoch, bar)
        seconds = time.perf_counter() - start
        seen, train_time = seen + n, train_time + seconds
        row = _validation_row(task, predictor, val, epoch, loss / n, seconds, opt.scheduler.get_last_lr()[0])
        row["data_wait_fraction"] = wait / max(seconds, 1e-9)  # time the steps waited for batches / training time
        if rank_and_world()[1] > 1:
            row |= over_ranks(_rank_resources(device, row["data_wait_fraction"]))
        result.history.append(row)
        bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4f}", **{primary: f"{row[primary]:.4f}"})
        if report:
            report(row)
        stopping.update(model, row[primary], epoch)
        if stopping.stop:
            break
    bar.close()
    assert stopping.best_state is not None
    model.load_state_dict(stopping.best_state)
    result.best_val, result.best_epoch = stopping.best_val, stopping.best_epoch
    result.epochs_run = len(result.history)
    result.train_seconds = train_time
    result.throughput = seen / max(train_time, 1e-9)
    return result
