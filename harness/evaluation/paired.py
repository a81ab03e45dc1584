"""Paired tests of two models scored on the same examples.

- `paired_bootstrap`: the difference of a metric (AUROC, AUPRC, accuracy, ... any of `BINARY_METRICS`) between two
  models over the same seeded resamples (`harness.evaluation.bootstrap`: the same seed gives the same resample
  matrix, so model A and model B are always scored on the same resampled examples). 95% percentile CI of the
  difference; two-sided p-value of "no difference" from the resampled differences shifted to mean zero under the
  null (Efron & Tibshirani 1993, §16.4): `p = (1 + #{|δ*_b − δ| ≥ |δ|}) / (1 + B)`.
- `delong`: DeLong, DeLong & Clarke-Pearson 1988 test of two correlated AUROCs, in the O(N log N) midrank form of
  Sun & Xu 2014 (IEEE Signal Processing Letters 21:1389); normal CI of the difference.
- `mcnemar`: McNemar's test of two paired accuracies (decisions at each model's own threshold): exact two-sided
  binomial on the discordant pairs when there are fewer than `EXACT_BELOW`, else χ² with continuity correction;
  Wald CI of the paired difference of proportions (Agresti 2002, §10.1).
- `multilabel_resampled`: the median per-label AUROC and AUPRC of a multi-label model over seeded resamples of
  sequences (rows, all labels of a row together), the input of `paired_from_resamples` for multi-label tasks.
- `regression_resampled`: Spearman ρ, Pearson r, R² and MSE of a regression model over seeded resamples of
  sequences, the input of `paired_from_resamples` for quantitative targets (Δρ on shared resamples).
- `holm`: Holm's step-down adjustment of a family of p-values (NaN entries are not part of the family).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.evaluation.bootstrap import bootstrap_binary_samples, percentile_ci, resample_blocks, resample_counts
from harness.evaluation.metrics import binary_metrics, check_binary, label_ranking_metrics, multilabel_metrics
from harness.evaluation.regression import bootstrap_regression_samples, regression_metrics

EXACT_BELOW = 25  # discordant pairs below which McNemar's test uses the exact binomial distribution


@dataclass(frozen=True)
class PairedTest:
    """One paired comparison: `delta` = metric of A − metric of B, its CI, a two-sided p-value, the test's name."""

    metric: str
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str


def paired_bootstrap(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    metrics: tuple[str, ...] = ("auroc", "auprc"),
    thresholds: tuple[float, float] = (0.5, 0.5),
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, PairedTest]:
    """Paired bootstrap of each metric's difference between `(N,)` scores A and B on `(N,)` labels.

    Thresholded metrics use `thresholds[0]` for A and `thresholds[1]` for B. Resamples where a metric is undefined
    for either model (one class only) are dropped for that metric.
    """
    y_true, score_a = check_binary(y_true, score_a)
    _, score_b = check_binary(y_true, score_b)
    a = resampled(y_true, score_a, thresholds[0], n_boot, seed)
    b = resampled(y_true, score_b, thresholds[1], n_boot, seed)  # same seed: same resamples
    return {name: paired_from_resamples(name, a, b, alpha) for name in metrics}


@dataclass(frozen=True)
class Resampled:
    """One model's metrics on all examples (`point`) and on each seeded resample (`samples`, `{name: (B,)}`)."""

    point: dict[str, float]
    samples: dict[str, np.ndarray]


def resampled(y_true: np.ndarray, y_score: np.ndarray, threshold: float, n_boot: int, seed: int) -> Resampled:
    """`Resampled` of `(N,)` scores; compute it once per model and pair it with any model on the same examples."""
    return Resampled(binary_metrics(y_true, y_score, threshold),
                     bootstrap_binary_samples(y_true, y_score, threshold, n_boot, seed))  # fmt: skip


def multilabel_resampled(y_true: np.ndarray, y_score: np.ndarray, n_boot: int, seed: int) -> Resampled:
    """`Resampled` of `(N, C)` scores: `auroc_median` and `auprc_median` (medians over the labels that have both
    classes) on all sequences and on each of the `n_boot` seeded resamples of sequences (`resample_blocks`: the
    same seed gives the same rows for every model). Per-label AUROC/AP are vectorised over a block of resamples."""
    point = multilabel_metrics(y_true, y_score)[0]
    y_true, y_score = np.asarray(y_true).astype(np.int8), np.asarray(y_score, dtype=np.float64)
    n = len(y_true)
    samples = {"auroc_median": np.empty(n_boot), "auprc_median": np.empty(n_boot)}
    lo = 0
    for idx in resample_blocks(n, n_boot, seed):
        auroc, ap = label_ranking_metrics(y_true, y_score, weights=resample_counts(idx, n))  # (B, C)
        with warnings.catch_warnings():  # a resample where no label has both classes: NaN, dropped by the tests
            warnings.simplefilter("ignore", RuntimeWarning)
            samples["auroc_median"][lo : lo + len(idx)] = np.nanmedian(auroc, axis=1)
            samples["auprc_median"][lo : lo + len(idx)] = np.nanmedian(ap, axis=1)
        lo += len(idx)
    return Resampled({k: point[k] for k in samples}, samples)


def regression_resampled(y_true: np.ndarray, y_pred: np.ndarray, n_boot: int, seed: int) -> Resampled:
    """`Resampled` of `(N,)`/`(N, C)` predictions of measured values (`harness.evaluation.regression`)."""
    return Resampled(regression_metrics(y_true, y_pred), bootstrap_regression_samples(y_true, y_pred, n_boot, seed))


def paired_from_resamples(name: str, a: Resampled, b: Resampled, alpha: float = 0.05) -> PairedTest:
    """The paired bootstrap test of metric `name` from two models' `Resampled` (same examples, n_boot, seed)."""
    delta = a.point[name] - b.point[name]
    diffs = a.samples[name] - b.samples[name]
    low, high = percentile_ci(diffs, alpha)
    return PairedTest(name, delta, low, high, bootstrap_p_value(diffs, delta), "paired_bootstrap")


def bootstrap_p_value(diffs: np.ndarray, delta: float) -> float:
    """Two-sided p of "no difference" from resampled differences `diffs (B,)` (non-finite ones dropped)."""
    finite = diffs[np.isfinite(diffs)]
    if finite.size == 0 or not np.isfinite(delta):
        return float("nan")
    extreme = np.count_nonzero(np.abs(finite - delta) >= abs(delta))
    return float((1 + extreme) / (1 + finite.size))


def delong(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, alpha: float = 0.05) -> PairedTest:
    """DeLong's test of AUROC(A) − AUROC(B) on the same `(N,)` labels; NaN when a class is missing."""
    y_true, score_a = check_binary(y_true, score_a)
    _, score_b = check_binary(y_true, score_b)
    pos, neg = y_true == 1, y_true == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m == 0 or n == 0:
        return PairedTest("auroc", *(float("nan"),) * 4, "delong")
    scores = np.stack([score_a, score_b])  # (2, N)
    x, y = scores[:, pos], scores[:, neg]
    tz = stats.rankdata(np.concatenate([x, y], axis=1), axis=1)  # midranks over all examples
    tx, ty = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    auc = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v10 = (tz[:, :m] - tx) / n  # (2, m) structural components of the positives
    v01 = 1.0 - (tz[:, m:] - ty) / m  # (2, n) ... and of the negatives
    cov = np.cov(v10) / m + np.cov(v01) / n
    delta = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 1e-15:  # identical rankings (or all comparisons tied): no evidence of a difference
        return PairedTest("auroc", delta, delta, delta, 1.0 if abs(delta) < 1e-12 else 0.0, "delong")
    se = np.sqrt(var)
    z = stats.norm.ppf(1 - alpha / 2)
    return PairedTest("auroc", delta, delta - z * se, delta + z * se, float(2 * stats.norm.sf(abs(delta) / se)),
                      "delong")  # fmt: skip


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, alpha: float = 0.05) -> PairedTest:
    """McNemar's test of accuracy(A) − accuracy(B) from `(N,)` 0/1 decisions of each model on `(N,)` labels."""
    y = np.asarray(y_true).astype(bool)
    right_a, right_b = np.asarray(pred_a).astype(bool) == y, np.asarray(pred_b).astype(bool) == y
    b, c = int(np.count_nonzero(right_a & ~right_b)), int(np.count_nonzero(~right_a & right_b))
    total = len(y)
    delta = (b - c) / total
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(max(b + c - (b - c) ** 2 / total, 0.0)) / total
    if b + c == 0:
        p, test = 1.0, "mcnemar_exact"
    elif b + c < EXACT_BELOW:
        p, test = float(stats.binomtest(b, b + c, 0.5).pvalue), "mcnemar_exact"
    else:
        p, test = float(stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), df=1)), "mcnemar"
    return PairedTest("accuracy", delta, delta - half, delta + half, p, test)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values `(M,)` of `p_values (M,)`; NaN entries stay NaN and do not count in the family."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    steps = (len(order) - np.arange(len(order))) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return out
