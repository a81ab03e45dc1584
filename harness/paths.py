"""Where regbench reads data and writes caches."""

from __future__ import annotations

import os
from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """Required data is missing; the message says what to download and where to put it."""


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


def cache_dir() -> Path:
    """`$REGBENCH_CACHE`, default `~/.cache/regbench`; created on demand."""
    path = Path(os.environ.get("REGBENCH_CACHE", Path.home() / ".cache" / "regbench")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
