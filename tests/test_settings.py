"""Every model and task declares its settings (type, range or choices) next to the default, and search spaces stay
inside them; the declared ranges are what `merge` checks for `--set`, study files and searched values."""

from __future__ import annotations

from typing import Any

import pytest

from harness.config import TRAIN_SETTINGS, ConfigError, Setting, Settings, merge
from harness.plugins import MODELS, TASKS, load_plugins
from harness.spec import ModelPlugin
from harness.tuning.search_space import fixed_for_target, searched_names

load_plugins()
PLUGINS = [e.obj for e in MODELS]


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_every_model_setting_is_declared(plugin: ModelPlugin) -> None:
    assert isinstance(plugin.defaults, Settings), f"{plugin.name}: defaults is not a Settings table"
    assert merge("model", plugin.defaults, dict(plugin.tiny)) == {**plugin.defaults, **plugin.tiny}


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_search_space_lies_inside_the_declared_ranges(plugin: ModelPlugin) -> None:
    assert searched_names(plugin, {})  # raises a ConfigError on a suggestion outside its setting


def test_a_regression_study_fixes_the_sampler_instead_of_searching_it() -> None:
    """`train.sampler=balanced` needs classes: searched on a regression task it failed half the trials."""
    basset = MODELS.get("basset")
    assert "train.sampler" in searched_names(basset, fixed_for_target({}, "binary"))
    fixed = fixed_for_target({"model": {"k": 3}}, "regression")
    assert fixed == {"model": {"k": 3}, "train": {"sampler": "uniform"}}
    assert "train.sampler" not in searched_names(basset, fixed)
    assert fixed_for_target({"train": {"sampler": "balanced"}}, "regression")["train"]["sampler"] == "balanced"


def test_a_search_space_outside_its_range_is_refused() -> None:
    defaults = Settings({"dropout": Setting(0.1, ge=0, lt=1), "k": Setting(4, ge=1, le=8)})

    def space(trial: Any) -> dict[str, Any]:
        return {"dropout": trial.suggest_float("dropout", 0.0, 1.5), "k": trial.suggest_int("k", 1, 8)}

    plugin = ModelPlugin("bad", "", "seq", defaults, space, fit_sklearn=lambda *a, **k: None)
    with pytest.raises(
        ConfigError, match=r"float range model.dropout: model.dropout=1.5 is invalid: must be in \[0, 1\)"
    ):
        searched_names(plugin, {})
    with pytest.raises(ConfigError, match=r"model.extra is not a setting"):
        searched_names(ModelPlugin("bad", "", "seq", defaults, lambda t: {"x": t.suggest_int("extra", 1, 2)},
                                   fit_sklearn=lambda *a, **k: None), {})  # fmt: skip


@pytest.mark.parametrize("name", [e.name for e in TASKS])
def test_unknown_data_option_lists_the_declared_ones(name: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown data setting\(s\) data.no_such_option; valid: "):
        TASKS.get(name)(no_such_option=1)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (Setting(1, ge=1), 0, "must be an integer >= 1"),
        (Setting(0.5, gt=0, le=1), float("inf"), r"must be in \(0, 1\] and finite"),
        (Setting(0.5, ge=0), float("nan"), "must be >= 0 and finite"),
        (Setting("a", choices=("a", "b")), "c", "must be one of a, b"),
        (TRAIN_SETTINGS.entries["device"], "tpu", "must be auto, cpu, mps, cuda or cuda:N"),
    ],
)
def test_setting_names_key_value_and_what_is_accepted(setting: Setting, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"x.y={value!r} is invalid: {message}"):
        setting.check("x.y", value)
    setting.check("x.y", setting.default)


def test_a_default_outside_its_range_is_a_bug() -> None:
    with pytest.raises(ValueError, match="default 0 is outside an integer >= 1"):
        Settings({"n": Setting(0, ge=1)})
