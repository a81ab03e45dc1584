"""Metrics of quantitative targets (`IOSpec.target = "regression"`) and their seeded bootstrap.

`regression_metrics`: Pearson r, Spearman ρ, R² (1 − SSE / SST) and MSE of `(N,)` or `(N, C)` predictions; for
several outputs, each metric is the mean over outputs. The primary metric is `spearman`. Constant predictions of
varying targets carry no ranking information: their correlations are 0 (NaN only when the targets are constant).
`bootstrap_regression_samples`: every metric on each of the seeded resamples of `harness.evaluation.bootstrap`
(`resample_blocks`: the same seed gives the same resampled rows everywhere, so two models' samples pair up),
vectorised over a block of resamples (Spearman re-ranks each resample: `scipy.stats.rankdata` along rows).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from harness.evaluation.bootstrap import percentile_ci, resample_blocks

REGRESSION_METRICS = ("pearson", "spearman", "r2", "mse")
PRIMARY = "spearman"


def check_regression(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(N, C)` float64 copies of finite `(N,)`/`(N, C)` targets and predictions of the same shape."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim not in (1, 2) or len(y_true) < 2:
        raise ValueError(f"targets {y_true.shape} and predictions {y_pred.shape}: need equal (N,) or (N, C), N >= 2")
    for name, a in (("targets", y_true), ("predictions", y_pred)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} hold {np.count_nonzero(~np.isfinite(a))} non-finite values")
    return y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)


def _rowwise(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of `(..., N)` arrays along the last axis (NaN where a correlation is undefined)."""
    yc, pc = y - y.mean(-1, keepdims=True), p - p.mean(-1, keepdims=True)
    sst, spp = (yc**2).sum(-1), (pc**2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = np.where(spp > 0, (yc * pc).sum(-1) / np.sqrt(sst * spp), 0.0)
        pearson = np.where(sst > 0, pearson, np.nan)
        sse = ((y - p) ** 2).sum(-1)
        r2 = np.where(sst > 0, 1 - sse / sst, np.nan)
    return {"pearson": pearson, "r2": r2, "mse": sse / y.shape[-1]}


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """All metrics of `(..., N)` arrays: Pearson, R², MSE, and Spearman as the Pearson of rows' average ranks."""
    out = _rowwise(y, p)
    out["spearman"] = _rowwise(stats.rankdata(y, axis=-1), stats.rankdata(p, axis=-1))["pearson"]
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """`pearson`, `spearman`, `r2`, `mse` (each the mean over outputs)."""
    y, p = check_regression(y_true, y_pred)
    per_output = _metrics(y.T, p.T)  # (C,) each
    return {name: float(np.mean(per_output[name])) for name in REGRESSION_METRICS}


def bootstrap_regression_samples(
    y_true: np.ndarray, y_pred: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each metric on each seeded resample: `{name: (n_boot,)}` (NaN where undefined, e.g. a constant resample)."""
    y, p = check_regression(y_true, y_pred)
    out = {name: np.empty(n_boot) for name in REGRESSION_METRICS}
    lo = 0
    for idx in resample_blocks(len(y), n_boot, seed):
        values = _metrics(np.moveaxis(y[idx], -1, 1), np.moveaxis(p[idx], -1, 1))  # (B, C, N) → (B, C)
        for name in REGRESSION_METRICS:
            out[name][lo : lo + len(idx)] = values[name].mean(axis=1)
        lo += len(idx)
    return out


def bootstrap_regression(
    y_true: np.ndarray, y_pred: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, tuple[float, float]]:
    """Percentile CIs `{name: (low, high)}` of the regression metrics."""
    samples = bootstrap_regression_samples(y_true, y_pred, n_boot, seed)
    return {name: percentile_ci(values, alpha) for name, values in samples.items()}
