"""`regbench tasks` and `regbench models`: the registries with one-line descriptions."""

from __future__ import annotations

import argparse

from harness.plugins import MODELS, TASKS, load_plugins


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("tasks", help="list registered tasks").set_defaults(func=lambda a: _print(TASKS))
    sub.add_parser("models", help="list registered models").set_defaults(func=lambda a: _print(MODELS))


def _print(registry) -> int:
    load_plugins()
    width = max(len(e.name) for e in registry)
    for entry in registry:
        print(f"{entry.name:<{width}}  {entry.description}")
    return 0
