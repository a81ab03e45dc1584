"""The training loop (plain PyTorch) and the predictor interface shared with sklearn baselines.

The trainable never touches MLflow: it calls `report(metrics)` once per epoch.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from harness.config import TrainConfig
from harness.spec import Dataset, ModelPlugin, Task
from harness.training.modeling import SequenceClassifier, build_model, count_parameters

Report = Callable[[dict[str, float]], None]


class Predictor(Protocol):
    """Anything that scores a dataset: `score(dataset) -> (N,)` or `(N, C)` probabilities."""

    def score(self, dataset: Dataset) -> np.ndarray: ...


@dataclass
class TorchPredictor:
    """A trained classifier plus what is needed to score with it."""

    model: SequenceClassifier
    batch_size: int = 256
    rc_tta: bool = False
    device: str = "cpu"

    def logits(self, dataset: Dataset) -> np.ndarray:
        """Raw logits `(N, n_outputs)`, averaged over both strands when `rc_tta`."""
        device = torch.device(self.device)
        self.model.to(device).eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(dataset), self.batch_size):
                idx = np.arange(start, min(start + self.batch_size, len(dataset)))
                strands = (False, True) if self.rc_tta else (False,)
                logits = [self.model(*_tensors(dataset.take(idx, rc).inputs, device)).float() for rc in strands]
                out.append(torch.stack(logits).mean(0).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.head.out_features), np.float32)

    def score(self, dataset: Dataset) -> np.ndarray:
        probs = 1.0 / (1.0 + np.exp(-self.logits(dataset)))
        return probs[:, 0] if probs.shape[1] == 1 else probs


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but no CUDA device is available; use train.device=cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def _tensors(arrays: tuple[np.ndarray, ...], device: torch.device) -> list[torch.Tensor]:
    out = []
    for a in arrays:
        t = torch.from_numpy(np.ascontiguousarray(a))
        out.append(t.long().to(device) if a.dtype == np.uint8 else t.to(device))
    return out


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


def _pos_weight(labels: np.ndarray, cfg: TrainConfig, device: torch.device) -> torch.Tensor | None:
    if cfg.class_weight == "none":
        return None
    y = labels.reshape(len(labels), -1)
    pos = y.sum(0)
    weight = (len(y) - pos) / np.maximum(pos, 1.0)
    return torch.tensor(weight, dtype=torch.float32, device=device)


def _autocast(device: torch.device, enabled: bool) -> Any:
    if not enabled or device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def prepare_splits(task: Task, plugin: ModelPlugin, hp: Mapping[str, Any]) -> Mapping[str, Dataset]:
    """The task's splits, passed through the plugin's `featurize` hook (e.g. frozen embeddings) if any."""
    splits = task.splits()
    return plugin.featurize(task, splits, **hp) if plugin.featurize is not None else splits


def fit(
    task: Task,
    plugin: ModelPlugin,
    hp: Mapping[str, Any],
    cfg: TrainConfig,
    report: Report | None = None,
    splits: Mapping[str, Dataset] | None = None,
) -> FitResult:
    """Train `plugin` with hyperparameters `hp` on the task's train split, early-stopping on val.

    Calls `report({"epoch", "train_loss", "val_<metric>"...})` after every epoch; restores the best epoch.
    """
    splits = splits or task.splits()
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not plugin.is_torch:
        return _fit_sklearn(task, plugin, hp, splits, report)
    device = resolve_device(cfg.device)
    model = build_model(plugin, task.io, hp).to(device)
    return _fit_torch(task, model, cfg, splits, device, report)


def _fit_sklearn(
    task: Task, plugin: ModelPlugin, hp: Mapping[str, Any], splits: Mapping[str, Dataset], report: Report | None
) -> FitResult:
    assert plugin.fit_sklearn is not None
    start = time.perf_counter()
    estimator = plugin.fit_sklearn(splits["train"], splits["val"], task.io, **hp)
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
        n_params=int(getattr(estimator, "n_params", 0)),
        train_seconds=seconds,
        throughput=len(splits["train"]) / max(seconds, 1e-9),
        epochs_run=1,
    )


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
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, steps_per_epoch * cfg.max_epochs))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=_pos_weight(train.labels, cfg, device))
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
    predictor = TorchPredictor(model, cfg.eval_batch_size, cfg.rc_tta, str(device))
    rng = np.random.default_rng(cfg.seed)
    primary = f"val_{task.primary_metric}"
    result = FitResult(predictor=predictor, n_params=count_parameters(model))
    best_state, stale, seen, train_time = None, 0, 0, 0.0
    bar = tqdm(total=cfg.max_epochs * steps_per_epoch, disable=not cfg.progress, desc=task.name, unit="batch")
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        start, total_loss = time.perf_counter(), 0.0
        for b, order in enumerate(np.array_split(rng.permutation(len(train)), steps_per_epoch)):
            batch = train.take(np.sort(order), cfg.rc_augment and bool(rng.integers(2)))
            inputs = _tensors(batch.inputs, device)
            target = torch.from_numpy(batch.y).float().to(device).reshape(len(batch.y), -1)
            with _autocast(device, use_amp):
                logits = model(*inputs)
                loss = loss_fn(logits.float(), target)
                aux = model.aux_loss()
                if aux is not None:
                    loss = loss + aux.float()
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{task.name}: non-finite training loss at epoch {epoch}, batch {b}; lower train.lr "
                    f"(now {cfg.lr}) or enable train.grad_clip"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += loss.item() * len(order)
            seen += len(order)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}", refresh=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds = time.perf_counter() - start
        train_time += epoch_seconds
        val_scores = predictor.score(val)
        row = {
            "epoch": float(epoch),
            "train_loss": total_loss / len(train),
            "epoch_time_s": epoch_seconds,
            "lr": scheduler.get_last_lr()[0],
            **{f"val_{k}": v for k, v in task.metrics(val.labels, val_scores).items()},
        }
        result.history.append(row)
        bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4f}", **{primary: f"{row[primary]:.4f}"})
        if report:
            report(row)
        score = row[primary]
        improved = np.isfinite(score) and (not np.isfinite(result.best_val) or score > result.best_val)
        if best_state is None or improved:
            result.best_val, result.best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if cfg.patience and stale >= cfg.patience:
            break
    bar.close()
    assert best_state is not None
    model.load_state_dict(best_state)
    result.epochs_run = len(result.history)
    result.train_seconds = train_time
    result.throughput = seen / max(train_time, 1e-9)
    return result
