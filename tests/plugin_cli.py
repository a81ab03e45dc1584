"""`regbench` in a subprocess with outside plugins: plugin files, or packages installed into a folder on PYTHONPATH.

A subprocess keeps the plugins out of this process's registries. Plugin files go through `--plugins PATH` and
installed packages through their entry points, where this checkout's `harness.plugins` loads them (`probe_*`);
where it does not yet, the subprocess imports them before running the command, so the plugins' own code is still
what gets checked.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRELOAD = """
import importlib, importlib.util, sys
from pathlib import Path
import harness
files, modules, argv = sys.argv[1].split("|"), sys.argv[2].split("|"), sys.argv[3:]
for path in filter(None, files):
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
for name in filter(None, modules):
    importlib.import_module(name)
from harness.cli import main
sys.exit(main(argv))
"""
PROBE_TASK = 'from harness.api import register_task\nregister_task("{name}", lambda **o: None, "probe")\n'


def _env(pythonpath: Sequence[Path]) -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _lists_task(name: str, args: Sequence[str], pythonpath: Sequence[Path] = ()) -> bool:
    command = [sys.executable, "-m", "harness.cli", "tasks", *args]
    out = subprocess.run(command, capture_output=True, text=True, env=_env(pythonpath), timeout=300, check=False)
    return name in out.stdout


@functools.cache
def probe_plugins_option() -> bool:
    """Whether `--plugins PATH` loads a plugin file in this checkout."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe_file.py"
        path.write_text(PROBE_TASK.format(name="probe.file"))
        return _lists_task("probe.file", ["--plugins", str(path)])


@functools.cache
def probe_entry_points() -> bool:
    """Whether an installed package's `regbench.tasks` entry point is loaded in this checkout."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "probe_entry.py").write_text(PROBE_TASK.format(name="probe.entry"))
        info = Path(folder) / "probe_entry-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-entry\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[regbench.tasks]\nprobe.entry = probe_entry\n")
        return _lists_task("probe.entry", [], [Path(folder)])


def regbench(
    args: Sequence[str],
    *,
    plugin_files: Sequence[Path] = (),
    packages: Sequence[str] = (),
    pythonpath: Sequence[Path] = (),
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `regbench ARGS` with `plugin_files` loaded and the installed `packages` (module names, found on
    `pythonpath`) registered."""
    by_option = bool(plugin_files) and probe_plugins_option()
    preload = [] if by_option else list(plugin_files)
    modules = list(packages) if packages and not probe_entry_points() else []
    argv = [*args, *(a for f in plugin_files if by_option for a in ("--plugins", str(f)))]
    command = [sys.executable, "-c", PRELOAD, "|".join(map(str, preload)), "|".join(modules), *argv]
    return subprocess.run(command, capture_output=True, text=True, env=_env(pythonpath), cwd=cwd or REPO,
                          timeout=timeout, check=False)  # fmt: skip


def pip_install(source: Path, target: Path) -> None:
    """Install the package at `source` into the folder `target` (not into any environment), offline."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
               "--target", str(target), str(source)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
