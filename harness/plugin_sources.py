"""Where outside plugins come from, how they are imported, and the origin every registration records.

Sources, imported by `harness.plugins.load_plugins` after the built-ins (`models`, `tasks`):
- installed packages: entry points in the groups `regbench.models` / `regbench.tasks`, whose value names a module;
  origin `package==version`. A broken one is reported (`regbench models` lists it), never raised, so commands that
  do not use it still work.
- files or package folders: `--plugins PATH`, `$REGBENCH_PLUGINS` (paths separated by `os.pathsep`), a study file's
  `plugins:`; origin `PATH sha256:DIGEST` over its source files. A broken one raises `PluginError`: one line naming
  the path and the cause.
- in Ray workers: the file and folder plugins the driver shipped with the job's runtime environment (`py_modules`,
  so a worker on another node needs no copy on its disk), imported by name under the driver's origins.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import traceback
from dataclasses import asdict, dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

BUILT_IN = "built-in"
GROUPS = ("regbench.models", "regbench.tasks")
PATHS_ENV = "REGBENCH_PLUGINS"
SHIPPED_ENV = "REGBENCH_SHIPPED_PLUGINS"  # set for Ray workers: JSON list of the driver's path `Source`s


class PluginError(ValueError):
    """A plugin that cannot be used; the message names its file or package and the cause."""


@dataclass(frozen=True)
class Source:
    """One outside plugin module.

    label: how messages name it (its path, or `entry point NAME = MODULE (package==version)`); module: the name it is
    imported as; origin: what runs record (`regbench.plugin_source`); path: its file or package folder ("" for an
    installed module, importable by name).
    """

    label: str
    module: str
    origin: str
    path: str = ""


def path_source(path: str | Path) -> Source:
    """The `Source` of a `.py` file or a package folder; PluginError when it is neither."""
    given = Path(path).expanduser()
    if not given.exists():
        raise PluginError(f"plugin {path}: no such file or folder")
    resolved = given.resolve()
    if resolved.is_file():
        if resolved.suffix != ".py":
            raise PluginError(f"plugin {path}: not Python (give a .py file or a package folder with __init__.py)")
        files = [resolved]
    elif (resolved / "__init__.py").is_file():
        files = sorted(f for f in resolved.rglob("*.py") if "__pycache__" not in f.parts)
    else:
        raise PluginError(f"plugin {path}: a folder without __init__.py is not a Python package")
    module = resolved.stem if resolved.is_file() else resolved.name
    if not module.isidentifier():
        raise PluginError(f"plugin {path}: {module!r} is not a valid Python module name; rename it")
    return Source(str(resolved), module, f"{resolved} sha256:{source_digest(resolved, files)}", str(resolved))


def source_digest(root: Path, files: list[Path]) -> str:
    """sha256 over the files' paths (relative to `root`) and contents: changes when any source file changes."""
    digest = hashlib.sha256()
    base = root.parent if root.is_file() else root
    for file in files:
        digest.update(str(file.relative_to(base)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def env_paths() -> list[str]:
    """The paths in `$REGBENCH_PLUGINS`; none in a Ray worker, which imports what the driver shipped instead."""
    if SHIPPED_ENV in os.environ:
        return []
    return [p for p in os.environ.get(PATHS_ENV, "").split(os.pathsep) if p.strip()]


def shipped_sources() -> list[Source]:
    """The driver's path plugins, in a Ray worker whose runtime environment shipped them (else none)."""
    return [Source(**item) for item in json.loads(os.environ.get(SHIPPED_ENV) or "[]")]


def ship(sources: list[Source]) -> dict[str, object]:
    """Runtime-environment fields that carry these path plugins to every Ray worker (`py_modules` uploads each
    file or folder to the cluster), and tell the workers to import them with these origins."""
    if not sources:
        return {}
    return {"py_modules": [s.path for s in sources],
            "env_vars": {SHIPPED_ENV: json.dumps([{**asdict(s), "path": ""} for s in sources])}}  # fmt: skip


def entry_point_sources() -> list[Source]:
    """The installed entry points of the regbench groups, as `Source`s."""
    found = []
    for group in GROUPS:
        for point in entry_points(group=group):
            found.append(_entry_source(point))
    return found


def _entry_source(point: EntryPoint) -> Source:
    dist = f"{point.dist.name}=={point.dist.version}" if point.dist else point.value
    return Source(f"entry point {point.name} = {point.value} ({dist})", point.value, dist)


def import_source(source: Source) -> None:
    """Import the plugin module (it registers at import); any failure becomes a one-line PluginError."""
    taken = sys.modules.get(source.module)
    if source.path and taken is not None:
        if _file_of(taken) == source.path:
            return
        raise PluginError(f"plugin {source.label}: the module name {source.module!r} is already taken by "
                          f"{_file_of(taken) or 'a built-in module'}; rename the plugin")  # fmt: skip
    try:
        if source.path:
            _exec_path_module(source)
        else:
            _import_installed(source.module)
    except Exception as err:
        raise PluginError(f"plugin {source.label}: {_cause(err, source)}") from None


def _import_installed(module: str) -> None:
    """Import an installed plugin module by name. A folder of that name without `__init__.py` on `sys.path` (the
    project folder `regbench new NAME --out NAME` wrote, in the working directory that Ray workers and `python -m`
    put first on `sys.path`) would be imported as an empty namespace package instead: such folders are passed over."""
    imported = importlib.import_module(module)
    if getattr(imported, "__file__", None) is not None or not hasattr(imported, "__path__"):
        return
    top = module.split(".")[0]
    shadows = [
        p for p in sys.path if (Path(p or ".") / top).is_dir() and not (Path(p or ".") / top / "__init__.py").exists()
    ]
    for name in [m for m in sys.modules if m == top or m.startswith(f"{top}.")]:
        del sys.modules[name]
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if p not in shadows]
    try:
        importlib.import_module(module)
    finally:
        sys.path[:] = saved


def _exec_path_module(source: Source) -> None:
    path = Path(source.path)
    init = path / "__init__.py" if path.is_dir() else path
    folders = [str(path)] if path.is_dir() else None
    spec = importlib.util.spec_from_file_location(source.module, init, submodule_search_locations=folders)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[source.module] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[source.module]
        raise


def _file_of(module: object) -> str:
    """The file or package folder a module was loaded from ("" when none)."""
    file = getattr(module, "__file__", None) or ""
    if not file:
        return ""
    path = Path(file).resolve()
    return str(path.parent if path.name == "__init__.py" else path)


def _cause(err: BaseException, source: Source) -> str:
    """`Type: message (file:line)`, the line being the last frame inside the plugin's own files."""
    where = ""
    root = source.path or ""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if root and str(Path(frame.filename).resolve()).startswith(root):
            where = f" ({frame.filename}:{frame.lineno})"
            break
    text = str(err).splitlines()[0] if str(err) else ""
    if isinstance(err, SyntaxError) and err.filename:
        text, where = str(err.msg), f" ({err.filename}:{err.lineno})"
    kind = "" if isinstance(err, PluginError) else f"{type(err).__name__}: "
    return f"{kind}{text}{where}"
