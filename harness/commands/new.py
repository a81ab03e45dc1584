"""`regbench new model|task NAME --out DIR`: a new plugin package to edit, install and benchmark."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  regbench new model my_cnn --out my_cnn && pip install -e my_cnn && regbench plugin check my_cnn
  regbench new task my.motifs --out my_motifs && pip install -e my_motifs && regbench plugin check my.motifs

The package holds pyproject.toml (with the entry point through which regbench finds the plugin), one module with
a small working plugin that imports only harness.api (comments marked CHANGE say what to replace) and a pytest
that runs `regbench plugin check NAME`. Guide: docs/plugins.md."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "new",
        help="create a model or task plugin package to edit and install",
        description="Write a pip-installable plugin package for model or task NAME into DIR (new or empty).",
        epilog=EPILOG,
    )
    p.add_argument("kind", choices=("model", "task"), help="what the plugin registers")
    p.add_argument("name", metavar="NAME", help="the name it registers, e.g. my_cnn or my.motifs")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create (must not hold files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.plugins import MODELS, TASKS, load_plugins
    from harness.scaffold import write

    load_plugins()
    registry = MODELS if args.kind == "model" else TASKS
    if args.name in registry:
        raise ValueError(f"{args.kind} {args.name!r} is already registered; pick another name")
    out = Path(args.out)
    for path in write(args.kind, args.name, out):
        print(f"wrote {path}")
    print(f"next: pip install -e {out} && regbench plugin check {args.name}")
    return 0
