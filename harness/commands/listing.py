"""`regbench tasks` and `regbench models`: the registries with one-line descriptions, outside plugins with their
origin, and installed plugins that failed to load."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("tasks", help="list registered tasks").set_defaults(func=lambda a: _print("tasks"))
    sub.add_parser("models", help="list registered models").set_defaults(func=lambda a: _print("models"))


def _print(kind: str) -> int:
    """Print the TASKS or MODELS registry (`kind` = "tasks" | "models"), one `name  description` line each (an
    outside plugin's line ends with `[from ORIGIN]`), then one `broken plugin:` line per entry point that failed."""
    from harness.plugins import MODELS, TASKS, broken_plugins, load_plugins

    load_plugins()
    registry = TASKS if kind == "tasks" else MODELS
    width = max(len(e.name) for e in registry)
    for entry in registry:
        origin = f"  [from {entry.origin}]" if entry.outside else ""
        print(f"{entry.name:<{width}}  {entry.description}{origin}")
    for line in broken_plugins():
        print(f"broken {line}")
    return 0
