"""`regbench tasks` and `regbench models`: the registries with one-line descriptions."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("tasks", help="list registered tasks").set_defaults(func=lambda a: _print("tasks"))
    sub.add_parser("models", help="list registered models").set_defaults(func=lambda a: _print("models"))


def _print(kind: str) -> int:
    """Print the TASKS or MODELS registry (`kind` = "tasks" | "models"), one `name  description` line each."""
    from harness.plugins import MODELS, TASKS, load_plugins

    load_plugins()
    registry = TASKS if kind == "tasks" else MODELS
    width = max(len(e.name) for e in registry)
    for entry in registry:
        print(f"{entry.name:<{width}}  {entry.description}")
    return 0
