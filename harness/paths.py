"""Where regbench reads data and writes caches, and the one check of every path a command reads or writes."""

from __future__ import annotations

import os
from pathlib import Path

# Tool caches kept under the project's cache folder (`cache_dir()`), unless the user set them: matplotlib's config
# and font cache (otherwise ~/.config/matplotlib, ~/.cache/matplotlib), torch inductor's and triton's compile
# caches (otherwise /tmp/torchinductor_$USER, ~/.triton).
TOOL_CACHES = {"MPLCONFIGDIR": "matplotlib", "TORCHINDUCTOR_CACHE_DIR": "torchinductor", "TRITON_CACHE_DIR": "triton"}


class DataNotFoundError(FileNotFoundError):
    """Required data is missing; the message says what to download and where to put it."""


class PathError(ValueError):
    """A path a command reads or writes is unusable; the message names the path and the problem, in one line."""


def data_root() -> Path | None:
    """`$REGBENCH_DATA` (real datasets, e.g. `../shared/data`), or None when unset."""
    value = os.environ.get("REGBENCH_DATA")
    return Path(value).expanduser().resolve() if value else None


def require_data(relative: str, what: str) -> Path:
    """`$REGBENCH_DATA/relative`, or a DataNotFoundError explaining how to provide it."""
    root = data_root()
    if root is None:
        raise DataNotFoundError(
            f"{what}: REGBENCH_DATA is not set. Point it at the folder holding {relative!r} "
            "(e.g. export REGBENCH_DATA=../shared/data)."
        )
    path = root / relative
    if not path.exists():
        raise DataNotFoundError(f"{what}: {path} does not exist (REGBENCH_DATA={root}).")
    return path


def cache_root() -> Path:
    """`$REGBENCH_CACHE`, default `~/.cache/regbench` (not created)."""
    return Path(os.environ.get("REGBENCH_CACHE", Path.home() / ".cache" / "regbench")).expanduser()


def cache_dir() -> Path:
    """`$REGBENCH_CACHE`, default `~/.cache/regbench`; created on demand, readable by its owner only (0700)."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def use_project_caches() -> None:
    """Point the tool caches of `TOOL_CACHES` under `cache_root()/tools` (each created by its tool when used);
    a variable the user set is left alone. Child processes (Ray workers) inherit the environment."""
    for variable, folder in TOOL_CACHES.items():
        os.environ.setdefault(variable, str(cache_root().resolve() / "tools" / folder))


def input_file(path: str | Path, what: str) -> Path:
    """`path` as an existing, readable regular file; else a DataNotFoundError (missing) or a PathError, naming it
    and the problem."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"{what} {p} does not exist")
    if p.is_dir():
        raise PathError(f"{what} {p} is a folder, not a file")
    if not p.is_file():
        raise PathError(f"{what} {p} is not a regular file")
    if not os.access(p, os.R_OK):
        raise PathError(f"{what} {p} is not readable (permission denied)")
    return p


def input_dir(path: str | Path, what: str) -> Path:
    """`path` as an existing, readable folder; else a DataNotFoundError (missing) or a PathError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"{what} {p} does not exist")
    if not p.is_dir():
        raise PathError(f"{what} {p} is a file, not a folder")
    if not os.access(p, os.R_OK | os.X_OK):
        raise PathError(f"{what} {p} is not readable (permission denied)")
    return p


def output_file(path: str | Path, what: str) -> Path:
    """`path` as a file that can be written: its folder exists and is writable, and it is not itself a folder."""
    p = Path(path).expanduser()
    folder = p.parent
    if p.is_dir():
        raise PathError(f"{what} {p} is a folder; give a file name")
    if not folder.exists():
        raise PathError(f"{what} {p}: folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise PathError(f"{what} {p}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise PathError(f"{what} {p} is not writable (permission denied)")
    return p


def output_dir(path: str | Path, what: str) -> Path:
    """`path` as a folder to write into (created, with its parents, if missing), or a PathError."""
    p = Path(path).expanduser()
    existing = next(q for q in (p, *p.parents) if q.exists())
    if not existing.is_dir():
        raise PathError(f"{what} {p}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PathError(f"{what} {p}: {existing} is not writable (permission denied)")
    p.mkdir(parents=True, exist_ok=True)
    return p
