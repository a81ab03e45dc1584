"""MkDocs hook: the settings reference, generated from the `Settings` declarations (never typed by hand).

A page writes `<!-- settings: train -->`, `<!-- settings: models -->` or `<!-- settings: tasks -->`; the hook puts
there one table per namespace, model or task: each setting's name, default and what it accepts
(`harness.config.Setting.describe`), plus a model's `tiny` value. `train.*` comes from `TRAIN_SETTINGS`, a model's
from its plugin's `defaults`; a task declares its `data.*` table inside its factory, so the hook calls the factory
with no options and records the table its `merge` checks first, then stops it before any data is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MARKER = re.compile(r"<!-- settings: (train|models|tasks) -->")


class _Declared(Exception):
    """Raised by the recording `Settings.check` to stop a task factory once its table is known."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings


def _cell(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return "`" + text.replace("|", "\\|") + "`" if text else ""


def _table(settings: Mapping[str, Any], prefix: str, tiny: Mapping[str, Any] | None = None) -> str:
    entries = getattr(settings, "entries", None)
    head = "| setting | default | accepts |" + (" tiny |" if tiny else "")
    rows = [head, "|---|---|---|" + ("---|" if tiny else "")]
    for name in settings:
        accepts = entries[name].describe().replace("|", "\\|") if entries else "(undeclared)"
        row = f"| `{prefix}.{name}` | {_cell(settings[name])} | {accepts} |"
        rows.append(row + (f" {_cell(tiny[name]) if name in tiny else ''} |" if tiny else ""))
    return "\n".join(rows) if len(settings) else "_no settings_"


def task_settings(factory: Any) -> Any:
    """The `Settings` table a task factory checks its `data.*` options against (see the module docstring); a
    factory that declares none fails the build (strict or not)."""
    from harness.config import Settings

    original = Settings.check

    def record(self: Settings, namespace: str, values: Mapping[str, Any]) -> None:
        if namespace == "data":
            raise _Declared(self)
        original(self, namespace, values)

    Settings.check = record  # type: ignore[method-assign]
    try:
        factory()
    except _Declared as declared:
        return declared.settings
    finally:
        Settings.check = original  # type: ignore[method-assign]
    raise RuntimeError(f"task factory {factory!r} declared no data settings table: the reference cannot list them")


def render(kind: str) -> str:
    from harness.config import TRAIN_SETTINGS
    from harness.plugins import MODELS, TASKS, load_plugins

    load_plugins()
    if kind == "train":
        return _table(TRAIN_SETTINGS, "train")
    parts = []
    for entry in MODELS if kind == "models" else TASKS:
        parts.append(f"### `{entry.name}`\n\n{entry.description}\n")
        if kind == "models":
            parts.append(_table(entry.obj.defaults, "model", entry.obj.tiny) + "\n")
        else:
            parts.append(_table(task_settings(entry.obj), "data") + "\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda m: render(m.group(1)), markdown)
