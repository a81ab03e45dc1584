"""Every registered model keeps its hyperparameter defaults in one place: `ModelPlugin.defaults`.

`build(io, *, ...)` / `fit_sklearn(train, val, io, *, ...)` take exactly the keys of `defaults` as keyword-only
parameters without default values (a `**name` catch-all only where the function's docstring explains `**name`), and
`tiny` overrides only keys of `defaults`, with values of the default's type. The checks are
`harness.contract.model_checks`' (shared with `regbench plugin check`).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.contract.model_checks import check_settings
from harness.plugin_validation import hooks, model_plugin_problems, signature_problems
from harness.plugins import MODELS, load_plugins
from harness.spec import ModelPlugin

load_plugins()
PLUGINS = [e.obj for e in MODELS]


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_signature_takes_exactly_the_defaults(plugin: ModelPlugin) -> None:
    assert hooks(plugin), f"{plugin.name} has neither build nor fit_sklearn"
    assert model_plugin_problems(plugin) == []


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_tiny_overrides_defaults_with_their_types(plugin: ModelPlugin) -> None:
    check_settings(plugin)  # tiny keys in defaults, values of the default's type, inside the declared ranges


def test_a_plugin_breaking_the_rule_is_reported() -> None:
    """Guards the checks above against passing vacuously."""

    def build(io: Any, *, k: int, extra: int = 1, **hp: Any) -> None:
        return None

    def fit_sklearn(train: Any, io: Any, *, k: int) -> None:
        return None

    plugin = ModelPlugin("bad", "", "seq", {"k": 3, "d": 2}, dict, build=build, fit_sklearn=fit_sklearn)
    assert signature_problems(plugin) == [
        "bad.build: **hp is not explained in its docstring",
        "bad.build: keyword-only parameter(s) ['extra'] have no declared default in `defaults`",
        "bad.build: parameter(s) ['extra'] have a default value; defaults belong in `defaults`",
        "bad.fit_sklearn: positional parameters ('train', 'io'), expected ('train', 'val', 'io')",
        "bad.fit_sklearn: no keyword-only parameter for default(s) ['d']",
    ]
    assert model_plugin_problems(plugin)[:2] == [
        "defaults must be a harness.api.Settings table declaring each setting's default and range",
        "give exactly one of build (a torch model) and fit_sklearn (a fitted baseline)",
    ]
