"""What a study's Optuna storage knows about its trials: the recording searcher, the trial table, the plots.

The driver's searcher stores, per trial, user attributes taken from the trial's last Tune result (epochs, wall
time, resource peaks, MLflow run id, Ray node), so a resumed study still has the table of every earlier trial.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
import pandas as pd
from ray.tune.search.optuna import OptunaSearch

from harness.reporting import plots

_SAME = ("peak_rss_mb", "peak_gpu_mem_mb", "mlflow_run_id", "ray_node_id")
RECORDED = {"training_iteration": "epochs", "time_total_s": "wall_time_s", **{k: k for k in _SAME}}  # result → attr
COLUMNS = ("number", "state", "best_val", "epochs", "wall_time_s", "peak_rss_mb",
           "peak_gpu_mem_mb", "ray_node_id", "mlflow_run_id")  # fmt: skip


class RecordingOptunaSearch(OptunaSearch):
    """OptunaSearch that records each trial's last result as user attributes and marks errored trials FAIL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: dict[str, dict[str, Any]] = {}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._last[trial_id] = result
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        last = result or self._last.pop(trial_id, None)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and last:
            for key, attr in RECORDED.items():
                if key in last:
                    ot_trial.set_user_attr(attr, last[key])
        super().on_trial_complete(trial_id, None if error else result, error)

    def save(self, checkpoint_path: str) -> None:
        """Skip Tune's searcher checkpoint: the study already lives in its RDB storage, where resume reopens it."""


def optuna_storage(url: str) -> optuna.storages.RDBStorage:
    """The Optuna RDB storage at `url`, its tables created if new. A SQLite file waits up to a minute for a lock,
    since every cell of a benchmark and its searcher write to the same file from their own processes; the
    benchmark opens it once before the cells start, so they never race to create the tables."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, best val, epochs, wall time, peaks, node, MLflow run, params."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "best_val": t.value}
        row.update({k: t.user_attrs.get(k) for k in COLUMNS if k not in row})
        if row["wall_time_s"] is None and t.datetime_start and t.datetime_complete:
            row["wall_time_s"] = (t.datetime_complete - t.datetime_start).total_seconds()
        row.update(t.params)
        rows.append(row)
    frame = pd.DataFrame(rows)
    params = sorted(set(frame.columns) - set(COLUMNS)) if rows else []
    return frame.reindex(columns=[*COLUMNS, *params])


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """COMPLETE trials with a finite value."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [t for t in done if t.value is not None and t.value == t.value]


def can_rank_importances(study: optuna.Study) -> bool:
    """Importances need two completed trials and a shared parameter that took more than one value."""
    done = completed(study)
    if len(done) < 2:
        return False
    shared = set.intersection(*(set(t.params) for t in done))
    return any(len({repr(t.params[name]) for t in done}) > 1 for name in shared)


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's optimisation history and (when meaningful) parameter importances as matplotlib figures."""
    from optuna.visualization import matplotlib as ovm

    figures = {}
    with warnings.catch_warnings():
        # Optuna's matplotlib plots are marked experimental since 2.2; the notice says nothing about this study
        warnings.filterwarnings("ignore", r"optuna\.visualization\.matplotlib\..* is experimental",
                                optuna.exceptions.ExperimentalWarning)  # fmt: skip
        if completed(study):
            figures["plots/optuna_history.png"] = ovm.plot_optimization_history(study).figure
        if can_rank_importances(study):
            figures["plots/optuna_importances.png"] = ovm.plot_param_importances(study).figure
    for fig in figures.values():
        fig.tight_layout()
    return figures


def close_figures(figures: dict[str, Any]) -> None:
    for fig in figures.values():
        plots.close(fig)
