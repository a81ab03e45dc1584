"""Seeded percentile-bootstrap confidence intervals for the metrics in `harness.evaluation.metrics`.

Every function draws its resamples from `np.random.default_rng(seed).integers(0, N, size=(n_boot, N))`, generated
in row blocks to bound memory (the blocks concatenate to exactly that matrix), so the same seed means the same
resamples everywhere. A resample where a metric is undefined (AUROC / AUPRC with a single class) is dropped for
that metric; the CI is the (α/2, 1 − α/2) percentile interval of the rest, (NaN, NaN) if none remain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from harness.evaluation.metrics import (
    BINARY_METRICS,
    check_binary,
    check_groups,
    check_multilabel,
    label_ranking_metrics,
    ranking_from_sorted,
    sort_desc,
    summarize,
)

_BLOCK_ELEMENTS = 1 << 17  # resamples × samples per block: 1 MB float64 arrays stay in cache (measured fastest)


def resample_blocks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield `(rows, n)` index blocks that together form the seeded `(n_boot, n)` resample matrix."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"need n >= 1 and n_boot >= 1, got n={n}, n_boot={n_boot}")
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK_ELEMENTS // n)
    for lo in range(0, n_boot, rows):
        yield rng.integers(0, n, size=(min(rows, n_boot - lo), n))


def percentile_ci(samples: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of the finite entries of `samples (B,)`; (NaN, NaN) when there are none."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [50 * alpha, 100 - 50 * alpha])
    return float(low), float(high)


def _thresholded(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall, F1 and MCC from `(B,)` confusion counts; 0 where a denominator is 0."""

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)

    mcc_den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "mcc": ratio(tp * tn - fp * fn, mcc_den),
    }


def resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """`(B, n)` index block → `(B, n)` float64 multiplicity of each sample in each resample."""
    flat = (np.arange(len(idx))[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=idx.size).reshape(idx.shape).astype(np.float64)


def bootstrap_binary_samples(
    y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each binary metric on each resample of `(N,)` inputs: `{name: (n_boot,)}`, NaN where undefined.

    Vectorised over resamples: the data are sorted by score once, and a block of resamples becomes a `(B, N)`
    multiplicity matrix over the sorted samples. Confusion counts are weighted sums; AUROC / AP come from
    `ranking_from_sorted` (scikit-learn's tie handling). No per-resample sort, no Python loop over resamples.
    """
    y_true, y_score = check_binary(y_true, y_score)
    n = len(y_true)
    order, is_end = sort_desc(y_score)
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)  # position of each sample in descending-score order
    y_sorted = y_true[order].astype(np.float64)
    pred_sorted = (y_score[order] >= threshold).astype(np.float64)
    out = {name: np.empty(n_boot) for name in BINARY_METRICS}
    lo = 0
    for idx in resample_blocks(n, n_boot, seed):
        counts = resample_counts(rank[idx], n)  # (B, N) in sorted order
        pos = counts * y_sorted
        neg = counts - pos
        tp, fp = np.einsum("bn,n->b", pos, pred_sorted), np.einsum("bn,n->b", neg, pred_sorted)
        n_pos = pos.sum(axis=1)
        values = _thresholded(tp, fp, n_pos - tp, n - n_pos - fp)
        values["auroc"], values["auprc"] = ranking_from_sorted(pos, neg, is_end)
        for name in BINARY_METRICS:
            out[name][lo : lo + len(idx)] = values[name]
        lo += len(idx)
    return out


def bootstrap_binary(
    y_true: np.ndarray,
    y_score: np.ndarray,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile CIs `{name: (low, high)}` of the seven `binary_metrics` over `n_boot` seeded resamples."""
    samples = bootstrap_binary_samples(y_true, y_score, threshold, n_boot, seed)
    return {name: percentile_ci(values, alpha) for name, values in samples.items()}


def bootstrap_statistic(
    fn: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """CI of any statistic `fn(idx)` of a resample `idx (n,)`; a Python loop calling `fn` once per resample.

    Slow by design: use it for statistics that have no vectorised form. Non-finite values of `fn` are dropped.
    """
    samples = np.array([fn(idx) for block in resample_blocks(n, n_boot, seed) for idx in block], dtype=np.float64)
    return percentile_ci(samples, alpha)


def bootstrap_multilabel_medians(
    y_true: np.ndarray,
    y_score: np.ndarray,
    groups: dict[str, np.ndarray] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """CIs of the median per-label AUROC of `(N, C)` inputs, overall (`auroc_median`) and per group
    (`auroc_median_<group>`). Per-label AUROCs are vectorised over a block of resamples; only the medians loop.
    A label lacking a class in a resample is left out of that resample's median.
    """
    y_true, y_score = check_multilabel(y_true, y_score)
    checked = check_groups(groups, y_true.shape[1])
    keys = ["auroc_median", *(f"auroc_median_{name}" for name in checked)]
    n = len(y_true)
    samples = {key: np.empty(n_boot) for key in keys}
    lo = 0
    for idx in resample_blocks(n, n_boot, seed):
        auroc, _ = label_ranking_metrics(y_true, y_score, weights=resample_counts(idx, n))  # (B, C)
        for i, row in enumerate(auroc, start=lo):
            stats = summarize(row, "auroc")
            for name, members in checked.items():
                stats.update(summarize(row[members], "auroc", f"_{name}"))
            for key in keys:
                samples[key][i] = stats[key]
        lo += len(idx)
    return {key: percentile_ci(values, alpha) for key, values in samples.items()}
