"""Scoring a trained predictor on named splits: every metric is named `{split}_{metric}`, and test
metrics carry bootstrap 95% CIs (`test_auroc_ci_low`, `test_auroc_ci_high`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.evaluation.bootstrap import bootstrap_binary, bootstrap_multilabel_medians
from harness.evaluation.metrics import binary_metrics, f1_optimal_threshold
from harness.evaluation.regression import bootstrap_regression
from harness.spec import Dataset, Predictor, Task

THRESHOLDED = ("accuracy", "precision", "recall", "f1", "mcc")


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]  # e.g. val_auroc, test_auroc, test_auroc_ci_low, test_f1_valthr
    scores: dict[str, np.ndarray]  # split → probabilities (regression: predictions) (N,) or (N, C)
    threshold: float  # F1-optimal threshold chosen on validation (binary tasks)


def evaluate(
    task: Task, predictor: Predictor, splits: Mapping[str, Dataset], n_boot: int = 1000, seed: int = 0
) -> Evaluation:
    """Val and test metrics; on test, 95% bootstrap CIs and the thresholded metrics at the val-chosen threshold."""
    scores = {name: predictor.score(splits[name]) for name in ("val", "test")}
    metrics: dict[str, float] = {}
    for name, s in scores.items():
        metrics.update({f"{name}_{k}": v for k, v in task.metrics(splits[name].labels, s).items()})
    threshold = 0.5
    if task.io.target == "binary":
        y_val, y_test = splits["val"].labels, splits["test"].labels
        threshold = f1_optimal_threshold(y_val, scores["val"])
        metrics["val_f1_threshold"] = threshold
        for k, (low, high) in bootstrap_binary(y_test, scores["test"], n_boot=n_boot, seed=seed).items():
            metrics[f"test_{k}_ci_low"], metrics[f"test_{k}_ci_high"] = low, high
        at_val = binary_metrics(y_test, scores["test"], threshold=threshold)
        metrics.update({f"test_{k}_valthr": at_val[k] for k in THRESHOLDED})
    elif task.io.target == "regression":
        for k, (low, high) in bootstrap_regression(splits["test"].labels, scores["test"], n_boot, seed).items():
            metrics[f"test_{k}_ci_low"], metrics[f"test_{k}_ci_high"] = low, high
    else:
        groups = dict(task.label_groups) or None
        cis = bootstrap_multilabel_medians(splits["test"].labels, scores["test"], groups, seed=seed)
        for k, (low, high) in cis.items():
            metrics[f"test_{k}_ci_low"], metrics[f"test_{k}_ci_high"] = low, high
    return Evaluation(metrics, scores, threshold)
