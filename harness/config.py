"""Run configuration: declared settings, the training settings and `--set key=value` overrides.

Keys are namespaced: `model.*` (the model plugin's hyperparameters), `train.*` (`TrainConfig`),
`data.*` (options of the task factory). Values are parsed as YAML scalars (`1e-3`, `true`, `cosine`).
Every setting is declared once as a `Setting` — its default, type and accepted range or choices — in a `Settings`
table (a plugin's `defaults`, a task's options, `TrainConfig`'s fields); `merge` checks every value against it, so
`--set`, study files and searched values go through the same code.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from harness.limits import MAX_NESTING, too_deep

NAMESPACES = ("model", "train", "data")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

Rule = Callable[[Mapping[str, Any]], str | None]  # a check across settings: why the values do not fit, or None


class ConfigError(ValueError):
    """A bad setting; the message names the key, the value and what is accepted."""


@dataclass(frozen=True)
class Setting:
    """One setting: its default (whose type is the setting's type) and the values accepted.

    ge/gt/le/lt: numeric bounds (floats must also be finite); choices: the accepted values; pattern: a regular
    expression a string must match fully, `accepts` its description.
    """

    default: Any
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] = ()
    pattern: str = ""
    accepts: str = ""

    @property
    def kind(self) -> type:
        return type(self.default)

    def describe(self) -> str:
        """What the setting accepts, e.g. `an integer >= 1` or `one of mean, max`."""
        if self.accepts:
            return self.accepts
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        noun = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}[self.kind]
        low = ("[", ">=", self.ge) if self.ge is not None else ("(", ">", self.gt) if self.gt is not None else None
        high = ("]", "<=", self.le) if self.le is not None else (")", "<", self.lt) if self.lt is not None else None
        if low and high:
            bounds = f"in {low[0]}{low[2]:g}, {high[2]:g}{high[0]}"
        elif low or high:
            _, op, x = low or high
            bounds = f"{op} {x:g}"
        else:
            return noun
        return f"{bounds} and finite" if self.kind is float else f"{noun} {bounds}"

    def accepted(self, value: Any) -> bool:
        """Whether `value` (already of the setting's type) is within the declared range or choices."""
        if self.choices:
            return value in self.choices
        if self.pattern:
            return re.fullmatch(self.pattern, str(value)) is not None
        if self.kind in (int, float) and not isinstance(value, bool):
            return (
                math.isfinite(value)
                and (self.ge is None or value >= self.ge)
                and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le)
                and (self.lt is None or value < self.lt)
            )
        return True

    def check(self, name: str, value: Any) -> None:
        """Raise a ConfigError `name=value is invalid: must be ...` unless the value is accepted."""
        if not self.accepted(value):
            raise ConfigError(f"{name}={value!r} is invalid: must be {self.describe()}")


class Settings(Mapping[str, Any]):
    """A plugin's or task's settings: as a mapping, name → default; `entries` the declared `Setting`s and `rules`
    the checks across settings (e.g. n_heads divides d_model), each returning why the values do not fit (naming the
    keys and values, e.g. `model.n_heads=3 must divide model.d_model=64`) or None."""

    def __init__(self, entries: Mapping[str, Setting], rules: Sequence[Rule] = ()) -> None:
        for name, entry in entries.items():
            if not entry.accepted(entry.default):
                raise ValueError(f"setting {name}: default {entry.default!r} is outside {entry.describe()}")
        self.entries: dict[str, Setting] = dict(entries)
        self.rules = tuple(rules)

    def __getitem__(self, key: str) -> Any:
        return self.entries[key].default

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Settings({dict(self)!r})"

    def updated(self, entries: Mapping[str, Setting]) -> Settings:
        """A copy with `entries` added or replaced (same rules)."""
        return Settings({**self.entries, **entries}, self.rules)

    def check(self, namespace: str, values: Mapping[str, Any]) -> None:
        """Every value within its declared range, then every rule; the first problem raises a ConfigError."""
        for name, value in values.items():
            self.entries[name].check(f"{namespace}.{name}", value)
        for rule in self.rules:
            reason = rule(values)
            if reason:
                raise ConfigError(reason)


def setting(default: Any, **accepts: Any) -> Any:
    """A dataclass field with `default` whose metadata declares the `Setting` (see `TrainConfig`)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(default, **accepts)})


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training loop (`harness.training.fit.fit`); each field declares what it accepts."""

    max_epochs: int = setting(20, ge=1)
    batch_size: int = setting(64, ge=1)
    eval_batch_size: int = setting(256, ge=1)
    lr: float = setting(1e-3, gt=0)
    weight_decay: float = setting(1e-2, ge=0)
    warmup_frac: float = setting(0.05, ge=0, lt=1)  # fraction of all optimiser steps spent in linear warm-up
    schedule: str = setting("cosine", choices=("cosine", "linear", "constant"))  # after warm-up
    grad_clip: float = setting(1.0, ge=0)  # max global grad norm; 0 disables
    patience: int = setting(5, ge=0)  # epochs without validation improvement before stopping; 0 disables
    amp: str = setting("auto", choices=("auto", "true", "false"))  # autocast: harness.training.precision
    compile: bool = setting(False)  # torch.compile the training step (CPU and CUDA)
    rc_augment: bool = setting(False)  # random reverse-complement of training batches
    rc_tta: bool = setting(False)  # average predictions over both strands at evaluation
    class_weight: str = setting("none", choices=("none", "balanced"))  # balanced: positive weight = n_neg / n_pos
    sampler: str = setting("uniform", choices=("uniform", "balanced"))  # balanced: oversample (training.sampling)
    mask_prob: float = setting(0.0, ge=0, lt=1)  # fraction of training bases replaced with N (augmentation)
    loss: str = setting("mse", choices=("mse", "poisson"))  # regression targets (poisson: counts); classifiers: BCE
    seed: int = setting(0, ge=0, le=2**32 - 1)  # numpy's seeds are 32-bit
    device: str = setting("auto", pattern=DEVICE.pattern, accepts="auto, cpu, mps, cuda or cuda:N")
    threads: int = setting(0, ge=0)  # torch intra-op threads; 0: fit.default_threads()
    progress: bool = setting(True)  # tqdm progress bars
    prefetch: int = setting(2, ge=0, le=64)  # batches built ahead in a background thread; 0: in the step's thread
    length_buckets: bool = setting(False)  # batches of similar length (less padding): harness.training.batches

    def __post_init__(self) -> None:
        TRAIN_SETTINGS.check("train", dataclasses.asdict(self))


TRAIN_SETTINGS = Settings({f.name: f.metadata["setting"] for f in dataclasses.fields(TrainConfig)})


def parse_value(text: str) -> Any:
    """A YAML scalar: `3` → 3, `1e-3` → 0.001, `true` → True, anything else (the empty string too) → str."""
    if not text:
        return text
    if too_deep(text):
        raise ConfigError(f"value {text[:40]!r}... nests deeper than {MAX_NESTING} levels")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _looks_float(value):
        return float(value)
    return value


def _looks_float(text: str) -> bool:
    if not text.isascii():  # float() also reads other scripts' digits: `٣٠٠` is not 300 here
        return False
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
        try:
            out[ns][name] = parse_value(raw.strip())
        except ConfigError as err:
            raise ConfigError(f"--set {key.strip()}: {err}") from None
    return out


def coerce(namespace: str, key: str, value: Any, like: Any) -> Any:
    """Coerce `value` to the type of the default `like`, or raise a ConfigError naming the key."""
    if like is None or (isinstance(value, type(like)) and not (isinstance(value, bool) and not isinstance(like, bool))):
        return value
    try:
        if isinstance(value, str) and not value.isascii() and isinstance(like, int | float):
            raise ValueError  # int() and float() also read other scripts' digits
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
            return str(value).lower() if isinstance(value, bool) else str(value)  # YAML true → "true"
    except (TypeError, ValueError, OverflowError):
        pass
    raise ConfigError(f"{namespace}.{key}={value!r}: expected {type(like).__name__} (default is {like!r})")


def merge(namespace: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated by overrides; unknown keys, wrong types and (for a `Settings` table) values outside their
    declared range raise a ConfigError naming the key, the value and what is accepted."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown {namespace} setting(s) {', '.join(namespace + '.' + k for k in unknown)}; "
            f"valid: {', '.join(sorted(defaults)) or '(none)'}"
        )
    values = {k: coerce(namespace, k, overrides[k], v) if k in overrides else v for k, v in defaults.items()}
    if isinstance(defaults, Settings):
        defaults.check(namespace, values)
    return values


def train_config(overrides: Mapping[str, Any], **fixed: Any) -> TrainConfig:
    """A `TrainConfig` from `train.*` overrides plus explicit values (e.g. seed from `--seed`)."""
    values = merge("train", TRAIN_SETTINGS, {**overrides, **{k: v for k, v in fixed.items() if v is not None}})
    return TrainConfig(**values)
