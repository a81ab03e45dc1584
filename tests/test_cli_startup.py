"""`regbench --help` stays fast: building the parser and rendering every command's help imports no heavy library.

Commands import torch, mlflow, ray, ... inside their `run()`; a module-level import in any `harness.commands.*`
module (or in what it imports) shows up here by name.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "mlflow", "ray", "optuna", "pandas", "matplotlib", "sklearn", "transformers", "captum", "scipy",
         "numpy", "models", "tasks")  # fmt: skip

PROBE = """
import argparse, contextlib, io, json, sys
from harness.cli import build_parser

parser = build_parser()
after_build = sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))
commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
for name in ["", *commands]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        build_parser().parse_args([*name.split(), "--help"])
after_help = sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))
print(json.dumps({"commands": sorted(commands), "after_build": after_build, "after_help": after_help}))
"""


def _probe() -> dict:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_build_parser_and_every_help_import_no_heavy_module():
    probe = _probe()
    assert {"train", "study", "benchmark", "explain"} <= set(probe["commands"])
    assert probe["after_build"] == [], f"imported by harness.cli.build_parser(): {probe['after_build']}"
    assert probe["after_help"] == [], f"imported by rendering `regbench <cmd> --help`: {probe['after_help']}"
