"""Opening the tracking store once per process, safely when many processes start on a fresh SQLite store at once.

MLflow creates a SQLite store's tables (its alembic migrations) the first time a process touches it, with no lock:
two processes doing so at once race and leave a store no later command can open. Here the first touch of a local
SQLite store happens under an exclusive file lock (`<db>.lock` beside the database), which also upgrades an
out-of-date schema; every other process waits for the lock and then finds the tables made. A store that cannot be
opened is a `StoreError` naming the store and the cause (one line on the command line).
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

_opened: set[str] = set()  # tracking URIs this process has opened


class StoreError(OSError):
    """The tracking store cannot be opened or created; the message names it and the cause."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for any other store or an in-memory database)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def open_store(uri: str) -> None:
    """Create (or upgrade) and open the store at `uri` once per process; a SQLite store under its file lock."""
    if uri in _opened:
        return
    db = sqlite_path(uri)
    try:
        if db is None:
            _touch(uri)
        else:
            if not db.parent.is_dir():
                raise StoreError(f"tracking store {uri}: folder {db.parent} does not exist (create it first)")
            with open(f"{db}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    _upgrade_if_old(uri)
                    _touch(uri)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
    except StoreError:
        raise
    except Exception as err:  # sqlalchemy / MlflowException / OSError: a broken, locked or unreadable store
        cause = " ".join(str(getattr(err, "message", err)).split())[:300]
        raise StoreError(f"tracking store {uri} cannot be opened: {type(err).__name__}: {cause}") from None
    _opened.add(uri)


def _touch(uri: str) -> None:
    """Make MLflow build (and cache) its store for `uri`: creates the tables of a fresh database."""
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).search_experiments(max_results=1)


def _upgrade_if_old(uri: str) -> None:
    """Migrate an existing SQLite store whose schema is older than this MLflow's (what `mlflow db upgrade` does)."""
    db = sqlite_path(uri)
    if db is None or not db.exists() or db.stat().st_size == 0:
        return
    import sqlalchemy
    from mlflow.store.db import utils

    engine = sqlalchemy.create_engine(uri)
    try:
        if not utils._all_tables_exist(engine):
            return  # fresh or foreign: MLflow's own first touch creates the tables
        current, head = utils._get_schema_version(engine), utils._get_latest_schema_revision()
        if current != head:
            print(f"regbench: upgrading tracking store {db} from schema {current} to {head}", file=sys.stderr)
            utils._upgrade_db(engine)
    finally:
        engine.dispose()
