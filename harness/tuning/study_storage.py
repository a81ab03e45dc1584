"""Where a study's Optuna trials live, and the check that a resumed study's trials belong to the tracking store.

The default Optuna storage follows the MLflow store: beside a SQLite store (`optuna.db` beside `mlflow.db`,
`<name>.optuna.db` beside any other `<name>.db`), so two stores in one folder never share trials; for a tracking
server, `optuna.db` in the working folder. Whatever the storage, a finished trial is reused only if its MLflow run is
in the store and experiment the cell logs to; otherwise the study is refused with the reason (its trials' records
live elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import optuna

from harness.config import ConfigError
from harness.tracking import store
from harness.tracking.store_open import sqlite_path


def default_storage() -> str:
    """The Optuna storage URL that goes with `store.tracking_uri()` (see the module docstring)."""
    db = sqlite_path(store.tracking_uri())
    if db is None:
        return f"sqlite:///{Path.cwd() / 'optuna.db'}"
    name = "optuna.db" if db.name == "mlflow.db" else f"{db.stem}.optuna.db"
    return f"sqlite:///{db.resolve().parent / name}"


def require_trials_in_store(trials: list[optuna.trial.FrozenTrial], experiment: str, study: str,
                            storage: str) -> None:  # fmt: skip
    """ConfigError unless every finished trial's MLflow run (`mlflow_run_id`) is in `experiment` of the tracking
    store and not deleted: a study is resumed only from trials whose records the cell's store holds."""
    ids = [t.user_attrs["mlflow_run_id"] for t in trials if t.user_attrs.get("mlflow_run_id")]
    if not ids:
        return
    found: set[str] = set()
    experiment_id = store.ensure_experiment(experiment)
    for start in range(0, len(ids), 100):
        quoted = ", ".join(f"'{i}'" for i in ids[start : start + 100])
        runs = store.client().search_runs([experiment_id], f"attributes.run_id IN ({quoted})", max_results=1000)
        found.update(r.info.run_id for r in runs)  # active runs only: a deleted run does not count
    missing = [i for i in ids if i not in found]
    if missing:
        raise ConfigError(
            f"study {study!r} in {storage} has {len(missing)} finished trial(s) whose MLflow runs (e.g. {missing[0]}) "
            f"are not in experiment {experiment!r} of {store.tracking_uri()}: its trials were logged to another "
            "store or deleted; pass --storage (or --study-name) for a study of this store"
        )
