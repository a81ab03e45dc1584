"""`regbench` in a subprocess with outside plugins: plugin files (`--plugins PATH`), or packages installed into a
folder on PYTHONPATH (found through their entry points). A subprocess keeps the plugins out of this process's
registries."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def regbench(
    args: Sequence[str],
    *,
    plugin_files: Sequence[Path] = (),
    pythonpath: Sequence[Path] = (),
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `regbench ARGS --plugins FILE...` with `pythonpath` (folders of installed plugin packages) first."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    argv = [*args, *(a for f in plugin_files for a in ("--plugins", str(f)))]
    return subprocess.run([sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=timeout, check=False)  # fmt: skip


def pip_install(source: Path, target: Path) -> None:
    """Install the package at `source` into the folder `target` (not into any environment), offline."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
               "--target", str(target), str(source)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
