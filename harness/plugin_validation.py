"""What a model plugin must declare to be registered: checked by `register_model`, for built-ins and outsiders alike.

`build(io, *, ...)` / `fit_sklearn(train, val, io, *, ...)` take exactly the keys of `defaults` as keyword-only
parameters without default values (a `**name` catch-all only where the function's docstring explains `**name`);
`defaults` is a `Settings` table (each setting's default, type and range); `tiny` overrides only keys of `defaults`,
with values of the default's type; a sklearn plugin says how its predictor is stored (`save_state`/`load_state`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, get_args

from harness.config import Settings
from harness.spec import InputKind, ModelPlugin

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
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
            problems.append(f"{where}: keyword-only parameter(s) {unknown} have no declared default in `defaults`")
        with_default = sorted(p.name for p in params if p.default is not p.empty)
        if with_default:
            problems.append(f"{where}: parameter(s) {with_default} have a default value; defaults belong in `defaults`")
    return problems


def declaration_problems(plugin: ModelPlugin) -> list[str]:
    """What is wrong with the plugin's declaration apart from its signatures (empty when nothing)."""
    problems = []
    if not NAME.match(plugin.name):
        problems.append(f"name {plugin.name!r}: use letters, digits, '_', '.', '-' (starting with a letter, ≤ 64)")
    if plugin.native_inputs not in get_args(InputKind):
        problems.append(f"native_inputs={plugin.native_inputs!r}: must be one of {', '.join(get_args(InputKind))}")
    if not isinstance(plugin.defaults, Settings):
        problems.append("defaults must be a harness.api.Settings table declaring each setting's default and range")
    if (plugin.build is None) == (plugin.fit_sklearn is None):
        problems.append("give exactly one of build (a torch model) and fit_sklearn (a fitted baseline)")
    if plugin.fit_sklearn is not None and (plugin.save_state is None or plugin.load_state is None):
        problems.append("fit_sklearn needs save_state and load_state (how the fitted predictor is stored)")
    extra = sorted(set(plugin.tiny) - set(plugin.defaults))
    if extra:
        problems.append(f"tiny sets {extra}, which are not in defaults")
    wrong = [k for k, v in plugin.tiny.items() if k in plugin.defaults and type(v) is not type(plugin.defaults[k])]
    if wrong:
        problems.append(f"tiny values of another type than their defaults: {wrong}")
    return problems


def model_plugin_problems(plugin: ModelPlugin) -> list[str]:
    """Every problem of the plugin's declaration and hook signatures (empty: it may be registered)."""
    return declaration_problems(plugin) + signature_problems(plugin)
