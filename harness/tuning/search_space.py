"""The hyperparameter space of a study: the model plugin's own space plus a training space (shared, or the plugin's).

Searched names are namespaced like `--set` keys (`model.k`, `train.lr`); a setting fixed with `--set` is not
searched (its `suggest_*` call returns the fixed value and records nothing). Sklearn plugins get only their model
space (no training loop, no epochs). Dropout belongs to the models' own spaces.

Every suggestion is checked against the declared setting it searches (`harness.config.Settings`) when the space is
defined, i.e. before a study starts (`searched_names`): its name must be declared, its bounds or choices of the
setting's type and inside its range. The values tried are merged like `--set` values, by the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.config import TRAIN_SETTINGS, ConfigError, Settings, coerce
from harness.spec import ModelPlugin


def train_space(trial: Any) -> dict[str, Any]:
    """Shared training settings of every torch model: learning rate, weight decay, batch size, random masking of
    training bases and the epoch sampler (uniform or class-balanced oversampling)."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
        "mask_prob": trial.suggest_float("mask_prob", 0.0, 0.15),
        "sampler": trial.suggest_categorical("sampler", ["uniform", "balanced"]),
    }


def check_suggestion(settings: Mapping[str, Any], key: str, values: Sequence[Any], what: str) -> None:
    """Raise a ConfigError unless `key` (`namespace.name`) is a declared setting and each of `values` (a range's
    bounds or a categorical's choices) is of its type and inside its declared range."""
    namespace, _, name = key.partition(".")
    if name not in settings:
        raise ConfigError(f"search space: {what} {key} is not a setting; valid: {', '.join(sorted(settings))}")
    entry = settings.entries[name] if isinstance(settings, Settings) else None
    for value in values:
        try:
            coerced = coerce(namespace, name, value, settings[name])
            if entry is not None:
                entry.check(key, coerced)
        except ConfigError as err:
            raise ConfigError(f"search space: {what} {key}: {err}") from None


class NamespacedTrial:
    """Wraps an optuna-like trial: `suggest_*("k", ...)` becomes `suggest_*("model.k", ...)`, unless fixed; each
    suggestion is checked against the declared `settings` first (`check_suggestion`)."""

    def __init__(self, trial: Any, namespace: str, fixed: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        self._trial, self._namespace, self._fixed, self._settings = trial, namespace, fixed, settings

    def _suggest(self, kind: str, name: str, values: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        if name in self._fixed:
            return self._fixed[name]
        key = f"{self._namespace}.{name}"
        check_suggestion(self._settings, key, values, "categorical" if kind == "categorical" else f"{kind} range")
        return getattr(self._trial, f"suggest_{kind}")(key, *args, **kwargs)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False):
        return self._suggest("float", name, (low, high), low, high, step=step, log=log)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._suggest("int", name, (low, high), low, high, step=step, log=log)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._suggest("categorical", name, choices, choices)


def fixed_for_target(fixed: Mapping[str, Mapping[str, Any]], target: str) -> Mapping[str, Mapping[str, Any]]:
    """`fixed` plus what a task's target kind fixes: a regression task has no classes to balance, so its studies fix
    `train.sampler=uniform` instead of searching it (unless `--set` chose one)."""
    if target != "regression" or "sampler" in fixed.get("train", {}):
        return fixed
    return {**fixed, "train": {**fixed.get("train", {}), "sampler": "uniform"}}


def study_space(plugin: ModelPlugin, fixed: Mapping[str, Mapping[str, Any]]) -> Callable[[Any], None]:
    """A define-by-run function suggesting `model.*` (and, for torch plugins, `train.*`) minus fixed settings."""

    def define(trial: Any) -> None:
        plugin.search_space(NamespacedTrial(trial, "model", fixed.get("model", {}), plugin.defaults))
        if plugin.is_torch:
            (plugin.train_space or train_space)(NamespacedTrial(trial, "train", fixed.get("train", {}), TRAIN_SETTINGS))

    return define


class _Recorder:
    """An optuna-like trial that suggests the lower bound / first choice and records the names."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        self.names.append(name)
        return low

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        self.names.append(name)
        return low

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.names.append(name)
        return choices[0]


def searched_names(plugin: ModelPlugin, fixed: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The namespaced names the study will search (for validation and display); a suggestion outside its declared
    setting raises a ConfigError here, before any trial runs."""
    recorder = _Recorder()
    study_space(plugin, fixed)(recorder)
    return recorder.names
