"""Every registered model keeps its hyperparameter defaults in one place: `ModelPlugin.defaults`.

`build(io, *, ...)` / `fit_sklearn(train, val, io, *, ...)` take exactly the keys of `defaults` as keyword-only
parameters without default values (a `**name` catch-all only where the function's docstring explains `**name`), and
`tiny` overrides only keys of `defaults`, with values of the default's type.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from harness.plugins import MODELS, load_plugins
from harness.spec import ModelPlugin

load_plugins()
PLUGINS = [e.obj for e in MODELS]
POSITIONAL = {"build": ("io",), "fit_sklearn": ("train", "val", "io")}


def hooks(plugin: ModelPlugin) -> dict[str, Callable[..., Any]]:
    """The plugin's `build` and/or `fit_sklearn`, by name."""
    found = {"build": plugin.build, "fit_sklearn": plugin.fit_sklearn}
    return {name: fn for name, fn in found.items() if fn is not None}


def signature_problems(plugin: ModelPlugin) -> list[str]:
    """What is wrong with the signatures of the plugin's hooks against its `defaults` (empty when nothing)."""
    problems = []
    for name, fn in hooks(plugin).items():
        params = inspect.signature(fn).parameters.values()
        where = f"{plugin.name}.{name}"
        positional = tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        if positional != POSITIONAL[name]:
            problems.append(f"{where}: positional parameters {positional}, expected {POSITIONAL[name]}")
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            problems.append(f"{where}: takes *args")
        keyword = {p.name for p in params if p.kind == p.KEYWORD_ONLY}
        catch_all = [p.name for p in params if p.kind == p.VAR_KEYWORD]
        undocumented = [n for n in catch_all if f"**{n}" not in (fn.__doc__ or "")]
        if undocumented:
            problems.append(f"{where}: **{undocumented[0]} is not explained in its docstring")
        missing = set(plugin.defaults) - keyword
        if missing and not catch_all:
            problems.append(f"{where}: no keyword-only parameter for default(s) {sorted(missing)}")
        unknown = sorted(keyword - set(plugin.defaults))
        if unknown:
            problems.append(f"{where}: keyword-only parameter(s) {unknown} not in defaults")
        with_default = sorted(p.name for p in params if p.default is not p.empty)
        if with_default:
            problems.append(f"{where}: parameter(s) {with_default} have a default value; defaults belong in `defaults`")
    return problems


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_signature_takes_exactly_the_defaults(plugin: ModelPlugin) -> None:
    assert hooks(plugin), f"{plugin.name} has neither build nor fit_sklearn"
    assert signature_problems(plugin) == []


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_tiny_overrides_defaults_with_their_types(plugin: ModelPlugin) -> None:
    assert sorted(set(plugin.tiny) - set(plugin.defaults)) == [], "tiny keys that are not in defaults"
    wrong = {k: (v, plugin.defaults[k]) for k, v in plugin.tiny.items() if type(v) is not type(plugin.defaults[k])}
    assert wrong == {}, "tiny value vs default of a different type"


def test_a_plugin_breaking_the_rule_is_reported() -> None:
    """Guards the checks above against passing vacuously."""

    def build(io: Any, *, k: int, extra: int = 1, **hp: Any) -> None:
        return None

    def fit_sklearn(train: Any, io: Any, *, k: int) -> None:
        return None

    plugin = ModelPlugin("bad", "", "seq", {"k": 3, "d": 2}, dict, build=build, fit_sklearn=fit_sklearn)
    assert signature_problems(plugin) == [
        "bad.build: **hp is not explained in its docstring",
        "bad.build: keyword-only parameter(s) ['extra'] not in defaults",
        "bad.build: parameter(s) ['extra'] have a default value; defaults belong in `defaults`",
        "bad.fit_sklearn: positional parameters ('train', 'io'), expected ('train', 'val', 'io')",
        "bad.fit_sklearn: no keyword-only parameter for default(s) ['d']",
    ]
