"""Cross-validated runs (`data.split=cv`): one nested MLflow run per fold, pooled out-of-fold scores on the parent.

The task is a `harness.data.splits.CvTask`: its `fold_tasks()` are K ordinary tasks (fold i's train/val/test; the
test folds partition the examples). `fit_and_log_folds` fits and logs each fold with the same `fit_and_log` as a
`regbench train` run, into a run nested under the open parent, then logs on the parent what the folds add up to.
`train_cv_run` is `regbench train --set data.split=cv`: a new top-level run (`regbench.kind=train`) around it.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.config import ConfigError
from harness.data.splits import CvTask, FoldTask
from harness.evaluation.bootstrap import bootstrap_binary
from harness.evaluation.metrics import binary_metrics
from harness.evaluation.scoring import THRESHOLDED
from harness.training.run import (
    ResolvedRun,
    Resources,
    RunOutcome,
    RunRequest,
    _as_logged,
    _log_config,
    fit_and_log,
    load_data,
    load_task_data,
    run_tags,
)

if TYPE_CHECKING:
    import pandas as pd

    from harness.tracking.store import RunLogger

CI_ENDS = ("_ci_low", "_ci_high")


@dataclass(frozen=True)
class CvOutcome:
    """What `fit_and_log_folds` logged: per fold its run id and `RunOutcome`; the parent's metrics; the pooled
    out-of-fold predictions `oof` (columns id, label, score, fold; one row per example)."""

    fold_run_ids: list[str]
    folds: list[RunOutcome]
    metrics: dict[str, float]
    oof: pd.DataFrame


def fit_and_log_folds(
    log: RunLogger, run: ResolvedRun, *, epoch_metrics: bool = True, resources: Resources = _as_logged
) -> CvOutcome:
    """Fit and log every fold of `run.task` (a `CvTask`, i.e. built with `data.split=cv`), then summarise them on
    the open run `log` (a `regbench train` run or a study cell's refit; the caller sets its tags).

    Per fold i (1-based): a run nested under `log` (same experiment, name `<parent name>/fold<i>`, tags `run_tags` of
    the fold + `regbench.kind=fold`, `fold=i`, `folds=K`) logged by `fit_and_log` on fold i's splits with
    `epoch_metrics` and `resources`, exactly as a holdout run (params, inputs, val/test metrics with CIs, predictions,
    plots, model). On `log`: the params `model.*`, `train.*`, `data.*`; tag `folds`; for every test and val point
    metric m of the folds `<m>_mean` and `<m>_sd` (sample sd over folds, e.g. `test_auroc_mean`, `test_auroc_sd`);
    the pooled out-of-fold metrics `test_<m>` with bootstrap 95% CIs `test_<m>_ci_low/_ci_high` (seed
    `train.seed`), `test_<m>_valthr` (each fold's examples at that fold's validation-chosen threshold) and
    `test_primary`, `test_primary_ci_low/_ci_high`, `test_primary_mean/_sd`; `n_folds`, `n_params` (fold 1),
    `train_time_s` (sum), `epochs_run` (mean), `wall_time_s` (all folds); artifacts `predictions/oof.tsv` (id, label,
    score, fold), `predictions/test.tsv` (the same rows: `regbench compare` and the paired tests read a CV run like
    any other) and `predictions/val.tsv` (every fold's validation scores, ids suffixed `@fold<i>`). No model is
    logged on the parent (each fold run has its own).

    Binary tasks only (ConfigError otherwise). Each fold runs in a worker thread: MLflow keeps its active run per
    thread, so the fold's fluent run nests under `log` without ending it.
    """
    from harness.reporting import plots
    from harness.tracking import store

    task = run.task
    if not isinstance(task, CvTask):
        raise ConfigError(f"task {task.name} was not built with data.split=cv; fit_and_log_folds needs its folds")
    if task.io.target != "binary":
        raise ConfigError(f"task {task.name}: cross-validation supports binary tasks, not {task.io.target}")
    start = time.perf_counter()
    parent = store.client().get_run(log.run_id)
    experiment = store.client().get_experiment(parent.info.experiment_id).name
    _log_config(log, run)
    log.tags({"folds": task.folds})

    def one_fold(fold: FoldTask) -> tuple[str, RunOutcome]:
        fold_run = dataclasses.replace(run, task=fold)
        data = load_data(fold_run)
        tags = {**run_tags(fold, run.plugin.name, run.cfg.seed, data.digest), "regbench.kind": "fold",
                "fold": fold.fold, "folds": task.folds}  # fmt: skip
        with store.run(experiment, f"{parent.info.run_name}/fold{fold.fold}", tags, parent_run_id=log.run_id) as child:
            return child.run_id, fit_and_log(child, fold_run, data, epoch_metrics=epoch_metrics, resources=resources)

    run_ids, outcomes = [], []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="regbench-fold") as worker:
        for fold in task.fold_tasks():
            run_id, outcome = worker.submit(one_fold, fold).result()
            run_ids.append(run_id)
            outcomes.append(outcome)
    metrics = fold_summary([o.evaluation.metrics for o in outcomes], task.primary_metric)
    oof, val = pooled_predictions(task.fold_tasks(), outcomes)
    metrics |= pooled_metrics(task, oof, [o.evaluation.threshold for o in outcomes], run.cfg.seed)
    metrics |= {"n_folds": task.folds, "n_params": outcomes[0].result.n_params,
                "train_time_s": sum(o.result.train_seconds for o in outcomes),
                "epochs_run": float(np.mean([o.result.epochs_run for o in outcomes])),
                "wall_time_s": time.perf_counter() - start}  # fmt: skip
    log.metrics(metrics)
    log.table(oof, "predictions/oof.tsv")
    log.table(oof[["id", "label", "score"]], "predictions/test.tsv")
    log.table(val, "predictions/val.tsv")
    labels, scores = oof["label"].to_numpy(), oof["score"].to_numpy()
    if 0 < labels.sum() < len(labels):
        figures = {"plots/roc_oof.png": plots.roc_figure(labels, scores, f"{task.name} out-of-fold ROC"),
                   "plots/pr_oof.png": plots.pr_figure(labels, scores, f"{task.name} out-of-fold PR")}  # fmt: skip
        for name, fig in figures.items():
            log.figure(fig, name)
            plots.close(fig)
    return CvOutcome(run_ids, outcomes, metrics, oof)


def fold_summary(fold_metrics: list[dict[str, float]], primary: str) -> dict[str, float]:
    """`<m>_mean`, `<m>_sd` (ddof 1) over folds of every `test_*` / `val_*` point metric (CI bounds left out), and
    `test_primary_mean/_sd`."""
    names = [k for k in fold_metrics[0] if k.startswith(("test_", "val_")) and not k.endswith(CI_ENDS)]
    out: dict[str, float] = {}
    for name in names:
        values = np.array([m.get(name, np.nan) for m in fold_metrics], dtype=np.float64)
        out[f"{name}_mean"], out[f"{name}_sd"] = float(np.mean(values)), float(np.std(values, ddof=1))
    out["test_primary_mean"], out["test_primary_sd"] = out[f"test_{primary}_mean"], out[f"test_{primary}_sd"]
    return out


def pooled_predictions(folds: list[FoldTask], outcomes: list[RunOutcome]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(oof, val)`: every fold's test scores (id, label, score, fold), and its validation scores with ids suffixed
    `@fold<i>`; each sorted by id."""
    import pandas as pd

    tests, vals = [], []
    for fold, outcome in zip(folds, outcomes, strict=True):
        for name, frames, suffix in (("test", tests, ""), ("val", vals, f"@fold{fold.fold}")):
            ds = fold.splits()[name]
            frames.append(pd.DataFrame({"id": np.char.add(ds.ids.astype(str), suffix), "label": ds.labels,
                                        "score": outcome.evaluation.scores[name], "fold": fold.fold}))  # fmt: skip
    oof, val = (pd.concat(frames).sort_values("id", kind="stable").reset_index(drop=True) for frames in (tests, vals))
    if oof["id"].duplicated().any():
        raise ValueError(f"test folds overlap: example {oof['id'][oof['id'].duplicated()].iloc[0]} is in two folds")
    return oof, val[["id", "label", "score"]]


def pooled_metrics(task: CvTask, oof: pd.DataFrame, thresholds: list[float], seed: int) -> dict[str, float]:
    """Out-of-fold `test_<m>` with bootstrap CIs, `test_<m>_valthr` (each fold at its own validation threshold), and
    `test_primary*`."""
    labels, scores = oof["label"].to_numpy(np.float64), oof["score"].to_numpy(np.float64)
    out = {f"test_{k}": v for k, v in task.metrics(labels, scores).items()}
    for k, (low, high) in bootstrap_binary(labels, scores, seed=seed).items():
        out[f"test_{k}_ci_low"], out[f"test_{k}_ci_high"] = low, high
    at_fold = (scores >= np.asarray(thresholds)[oof["fold"].to_numpy() - 1]).astype(np.float64)
    at_val = binary_metrics(labels, at_fold, threshold=0.5)
    out |= {f"test_{k}_valthr": at_val[k] for k in THRESHOLDED}
    out |= {f"test_primary{end}": out[f"test_{task.primary_metric}{end}"] for end in ("", *CI_ENDS)}
    return out


def train_cv_run(request: RunRequest, run: ResolvedRun) -> str:
    """`regbench train --set data.split=cv`: a new top-level run around `fit_and_log_folds`; returns its run id."""
    digest, _ = load_task_data(run.task)
    from harness.tracking import store

    tags = {**run_tags(run.task, run.plugin.name, request.seed, digest), "regbench.kind": "train"}
    with store.run(request.experiment, f"{run.task.name}/{run.plugin.name}/s{request.seed}", tags) as log:
        fit_and_log_folds(log, run)
        return log.run_id
