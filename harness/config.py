"""Run configuration: the training settings and `--set key=value` overrides.

Keys are namespaced: `model.*` (the model plugin's hyperparameters), `train.*` (`TrainConfig`),
`data.*` (options of the task factory). Values are parsed as YAML scalars (`1e-3`, `true`, `cosine`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

NAMESPACES = ("model", "train", "data")


class ConfigError(ValueError):
    """A bad setting; the message names the key, the value and what is accepted."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training loop (`harness.training.fit.fit`)."""

    max_epochs: int = 20
    batch_size: int = 64
    eval_batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_frac: float = 0.05  # fraction of all optimiser steps spent in linear warm-up
    schedule: str = "cosine"  # cosine | linear | constant (after warm-up)
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    patience: int = 5  # epochs without validation improvement before stopping; 0 disables
    amp: bool = True  # mixed precision (bf16/fp16 autocast) — CUDA only, ignored on CPU
    rc_augment: bool = False  # random reverse-complement of training batches
    rc_tta: bool = False  # average predictions over both strands at evaluation
    class_weight: str = "none"  # none | balanced (positive weight = n_neg / n_pos per label)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    progress: bool = True  # tqdm progress bars

    def __post_init__(self) -> None:
        checks = {
            "max_epochs": self.max_epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup_frac": 0 <= self.warmup_frac < 1,
            "schedule": self.schedule in ("cosine", "linear", "constant"),
            "grad_clip": self.grad_clip >= 0,
            "patience": self.patience >= 0,
            "class_weight": self.class_weight in ("none", "balanced"),
            "threads": self.threads >= 0,
        }
        hints = {
            "max_epochs": ">= 1", "batch_size": ">= 1", "eval_batch_size": ">= 1", "lr": "> 0",
            "weight_decay": ">= 0", "warmup_frac": "in [0, 1)", "schedule": "cosine, linear or constant",
            "grad_clip": ">= 0", "patience": ">= 0", "class_weight": "none or balanced", "threads": ">= 0",
        }  # fmt: skip
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"train.{key}={getattr(self, key)!r} is invalid: must be {hints[key]}")


def parse_value(text: str) -> Any:
    """A YAML scalar: `3` → 3, `1e-3` → 0.001, `true` → True, anything else → str."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _looks_float(value):
        return float(value)
    return value


def _looks_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`["model.k=4", "train.lr=1e-3"]` → `{"model": {"k": 4}, "train": {"lr": 0.001}, "data": {}}`."""
    out: dict[str, dict[str, Any]] = {ns: {} for ns in NAMESPACES}
    for item in items:
        key, sep, raw = item.partition("=")
        ns, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {item!r}: expected NAMESPACE.KEY=VALUE, e.g. model.k=4 or train.lr=1e-3")
        if ns not in out:
            raise ConfigError(f"--set {item!r}: unknown namespace {ns!r}; use one of {', '.join(NAMESPACES)}")
        out[ns][name] = parse_value(raw.strip())
    return out


def coerce(namespace: str, key: str, value: Any, like: Any) -> Any:
    """Coerce `value` to the type of the default `like`, or raise a ConfigError naming the key."""
    if like is None or (isinstance(value, type(like)) and not (isinstance(value, bool) and not isinstance(like, bool))):
        return value
    try:
        if isinstance(like, bool):
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if isinstance(like, int) and not isinstance(value, bool):
            if float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if isinstance(like, float) and not isinstance(value, bool):
            return float(value)
        if isinstance(like, str):
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{namespace}.{key}={value!r}: expected {type(like).__name__} (default is {like!r})")


def merge(namespace: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated by overrides; unknown keys and wrong types raise with the valid keys listed."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown {namespace} setting(s) {', '.join(namespace + '.' + k for k in unknown)}; "
            f"valid: {', '.join(sorted(defaults)) or '(none)'}"
        )
    return {k: coerce(namespace, k, overrides[k], v) if k in overrides else v for k, v in defaults.items()}


def train_config(overrides: Mapping[str, Any], **fixed: Any) -> TrainConfig:
    """A `TrainConfig` from `train.*` overrides plus explicit values (e.g. seed from `--seed`)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    values = merge("train", defaults, {**overrides, **{k: v for k, v in fixed.items() if v is not None}})
    return TrainConfig(**values)
