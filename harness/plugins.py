"""The task and model registries, filled by importing the `tasks` and `models` packages.

Tasks are registered as factories `factory(**data_options) -> Task` (options come from `--set data.*`);
models as `ModelPlugin`s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.registry import Registry

if TYPE_CHECKING:  # harness.spec imports numpy; command modules import this one to build the parser
    from harness.spec import ModelPlugin, Task

TaskFactory = Callable[..., "Task"]

TASKS: Registry[TaskFactory] = Registry("task")
MODELS: Registry[ModelPlugin] = Registry("model")


def load_plugins() -> None:
    """Import the plugin packages (idempotent); each module registers itself at import."""
    import models  # noqa: F401
    import tasks  # noqa: F401


def make_task(name: str, data_options: dict[str, Any] | None = None) -> Task:
    load_plugins()
    return TASKS.get(name)(**(data_options or {}))


def get_model(name: str) -> ModelPlugin:
    load_plugins()
    return MODELS.get(name)


def shortcut_models() -> tuple[str, ...]:
    """Names of the registered shortcut baselines (`ModelPlugin.shortcut`)."""
    load_plugins()
    return tuple(e.name for e in MODELS if e.obj.shortcut)


def register_model(plugin: ModelPlugin) -> ModelPlugin:
    return MODELS.register(plugin.name, plugin, plugin.description)


def register_task(name: str, factory: TaskFactory, description: str) -> TaskFactory:
    """Register a task family: `factory(**data_options) -> Task`, options from `--set data.*`."""
    return TASKS.register(name, factory, description)


def add_plugins_option(parser: argparse.ArgumentParser) -> None:
    """`--plugins PATH` (repeatable) on a command that resolves task or model names."""
    parser.add_argument("--plugins", action="append", default=[], metavar="PATH",
                        help="a plugin .py file or package folder to load first (repeatable)")  # fmt: skip
