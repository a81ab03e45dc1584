"""Evaluation metrics for binary and multi-label tasks.

Point estimates of the thresholded metrics come from scikit-learn. AUROC and average precision (AUPRC) for many
rankings at once come from one vectorised kernel, `ranking_from_sorted`, shared with
`harness.evaluation.bootstrap`: it works on weighted positive / negative counts laid out in descending-score
order, so a bootstrap resample is just a new weight vector over the same sorted samples. It reproduces
scikit-learn's tie handling (one ROC / PR point per distinct score), and the tests check it against
`roc_auc_score` and `average_precision_score`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    matthews_corrcoef,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "mcc", "auroc", "auprc")
_CHUNK_ELEMENTS = 1 << 18  # resamples × labels × samples per chunk: 2 MB float64 arrays, cache-friendly


def check_binary(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate `(N,)` labels in {0, 1} and `(N,)` finite scores; return them as int8 and float64."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 1 or y_score.ndim != 1:
        raise ValueError(f"y_true and y_score must be 1-D, got shapes {y_true.shape} and {y_score.shape}")
    if len(y_true) != len(y_score):
        raise ValueError(f"y_true and y_score differ in length: {len(y_true)} != {len(y_score)}")
    return _check_values(y_true, y_score)


def check_multilabel(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate `(N, C)` labels in {0, 1} and `(N, C)` finite scores; return them as int8 and float64."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must be 2-D of equal shape, got {y_true.shape} and {y_score.shape}")
    return _check_values(y_true, y_score)


def _check_values(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y_true.size == 0:
        raise ValueError("y_true and y_score are empty")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"y_true must hold only 0 and 1, found {np.unique(y_true)[:10]}")
    if not np.isfinite(y_score).all():
        raise ValueError(f"y_score holds {np.count_nonzero(~np.isfinite(y_score))} non-finite values (NaN or inf)")
    return y_true.astype(np.int8), y_score


def binary_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1, MCC (at `y_score >= threshold`), AUROC and AUPRC of `(N,)` inputs.

    AUROC and AUPRC are NaN when `y_true` holds a single class; empty predicted classes count as 0.
    """
    y_true, y_score = check_binary(y_true, y_score)
    y_pred = (y_score >= threshold).astype(np.int8)
    both_classes = 0 < y_true.sum() < len(y_true)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "auroc": float(roc_auc_score(y_true, y_score)) if both_classes else float("nan"),
        "auprc": float(average_precision_score(y_true, y_score)) if both_classes else float("nan"),
    }


def f1_optimal_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The score threshold (`y_score >= t` is positive) that maximises F1; choose it on validation data only."""
    y_true, y_score = check_binary(y_true, y_score)
    if not y_true.any():
        raise ValueError("f1_optimal_threshold needs at least one positive label")
    precision, recall, thresholds = precision_recall_curve(y_true, y_score)
    precision, recall = precision[:-1], recall[:-1]  # the last point (P=1, R=0) has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thresholds[np.argmax(f1)])


def sort_desc(y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descending order along the last axis and the mask of the last position of each tie group.

    `y_score (..., M)` → `order (..., M)` (argsort indices), `is_end (..., M)` bool.
    """
    order = np.argsort(-y_score, axis=-1, kind="stable")
    s = np.take_along_axis(y_score, order, axis=-1)
    is_end = np.ones(s.shape, dtype=bool)
    is_end[..., :-1] = s[..., :-1] != s[..., 1:]
    return order, is_end


def ranking_from_sorted(pos: np.ndarray, neg: np.ndarray, is_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision of rankings given as weights in descending-score order.

    `pos`, `neg (..., M)`: non-negative positive / negative weight (count) of each sorted position; `is_end`
    (broadcastable to `(..., M)`): True at the last position of each group of tied scores. Returns `auroc (...)`,
    `ap (...)`, NaN where the total positive or negative weight is 0. Each tie group is one ROC / PR point, as in
    scikit-learn: AUROC is the trapezoidal area (= tie-aware Mann–Whitney), AP = Σ (R_i − R_{i−1}) P_i.
    """
    cum_pos, cum_neg = np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)  # TP, FP at each position
    tp_prev, fp_prev = _at_previous_end(cum_pos, is_end), _at_previous_end(cum_neg, is_end)
    d_tp = np.where(is_end, cum_pos - tp_prev, 0.0)  # positives / negatives of the tie group ending here
    d_fp = np.where(is_end, cum_neg - fp_prev, 0.0)
    seen = cum_pos + cum_neg
    precision = np.divide(cum_pos, seen, out=np.zeros_like(seen), where=seen > 0)
    n_pos, n_neg = cum_pos[..., -1], cum_neg[..., -1]
    defined = (n_pos > 0) & (n_neg > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = (d_fp * (cum_pos + tp_prev)).sum(axis=-1) / (2 * n_pos * n_neg)
        ap = (d_tp * precision).sum(axis=-1) / n_pos
    return np.where(defined, auroc, np.nan), np.where(defined, ap, np.nan)


def _at_previous_end(cum: np.ndarray, is_end: np.ndarray) -> np.ndarray:
    """`cum (..., M)` (non-decreasing) read at the end of the previous tie group of each position; 0 for the first."""
    prev = np.zeros_like(cum)
    prev[..., 1:] = np.maximum.accumulate(np.where(is_end, cum, 0.0), axis=-1)[..., :-1]
    return prev


def label_ranking_metrics(
    y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-label AUROC and AP of validated `(N, C)` arrays, optionally weighted per sample.

    `weights`: `(N,)` or `(B, N)` non-negative sample multiplicities (B bootstrap resamples at once). Returns
    `auroc`, `ap` of shape `(C,)` or `(B, C)`; NaN where a label has no positive or no negative weight. Labels are
    sorted once per call, in column chunks so memory stays bounded for large N × C.
    """
    n, c = y_true.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    auroc, ap = np.empty((*w.shape[:-1], c)), np.empty((*w.shape[:-1], c))
    step = max(1, _CHUNK_ELEMENTS // w.size)
    for lo in range(0, c, step):
        cols = slice(lo, lo + step)
        order, is_end = sort_desc(y_score[:, cols].T)  # (c_chunk, N)
        y_sorted = np.take_along_axis(y_true[:, cols].T, order, axis=-1)
        w_sorted = w[..., order]  # (..., c_chunk, N)
        pos = w_sorted * y_sorted
        auroc[..., cols], ap[..., cols] = ranking_from_sorted(pos, w_sorted - pos, is_end)
    return auroc, ap


def summarize(values: np.ndarray, prefix: str, suffix: str = "") -> dict[str, float]:
    """`{prefix}_mean{suffix}` and `{prefix}_median{suffix}` over the finite entries of `values` (NaN if none)."""
    finite = values[np.isfinite(values)]
    mean, median = (float(finite.mean()), float(np.median(finite))) if finite.size else (np.nan, np.nan)
    return {f"{prefix}_mean{suffix}": mean, f"{prefix}_median{suffix}": median}


def check_groups(groups: dict[str, np.ndarray] | None, n_labels: int) -> dict[str, np.ndarray]:
    """Validate label-index groups; return them with lower-cased names and integer index arrays."""
    checked: dict[str, np.ndarray] = {}
    for name, members in (groups or {}).items():
        idx = np.asarray(members)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or ((idx < 0) | (idx >= n_labels)).any():
            raise ValueError(f"group {name!r} must be a 1-D array of label indices in [0, {n_labels})")
        checked[name.lower()] = idx
    return checked


def multilabel_metrics(
    y_true: np.ndarray, y_score: np.ndarray, groups: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, float], pd.DataFrame]:
    """Per-label AUROC / AUPRC of `(N, C)` inputs, summarised overall and per label group.

    Labels without both classes in `y_true` are skipped (`n_labels_skipped`). Summary keys: `auroc_mean`,
    `auroc_median`, `auprc_mean`, `auprc_median`, `n_labels_scored`, `n_labels_skipped`, and per group `g`
    (lower-cased) `auroc_mean_g`, `auroc_median_g`, `auprc_mean_g`, `auprc_median_g`. The frame has one row per
    label: `label`, `auroc`, `auprc`, `n_pos`.
    """
    y_true, y_score = check_multilabel(y_true, y_score)
    checked = check_groups(groups, y_true.shape[1])
    auroc, ap = label_ranking_metrics(y_true, y_score)
    n_scored = int(np.isfinite(auroc).sum())
    summary = {**summarize(auroc, "auroc"), **summarize(ap, "auprc")}
    summary.update(n_labels_scored=float(n_scored), n_labels_skipped=float(len(auroc) - n_scored))
    for name, idx in checked.items():
        summary.update(summarize(auroc[idx], "auroc", f"_{name}"))
        summary.update(summarize(ap[idx], "auprc", f"_{name}"))
    per_label = pd.DataFrame(
        {"label": np.arange(len(auroc)), "auroc": auroc, "auprc": ap, "n_pos": y_true.sum(axis=0, dtype=np.int64)}
    )
    return summary, per_label
