"""Paired tests against independent references: a plain resampling loop, the O(N²) DeLong formula, hand counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from harness.evaluation.paired import (
    delong,
    holm,
    mcnemar,
    multilabel_resampled,
    paired_bootstrap,
    paired_from_resamples,
)


def fixed_inputs(n: int = 80, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated score vectors, with ties (scores rounded to 2 decimals)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    shared = rng.normal(size=n)
    a = np.round(1 / (1 + np.exp(-(1.5 * y + shared))), 2)
    b = np.round(1 / (1 + np.exp(-(0.8 * y + shared + rng.normal(size=n)))), 2)
    return y, a, b


def test_paired_bootstrap_matches_a_plain_loop_over_the_documented_resamples() -> None:
    y, a, b = fixed_inputs()
    n_boot, seed, thresholds = 300, 7, (0.55, 0.5)
    fast = paired_bootstrap(y, a, b, ("auroc", "auprc", "accuracy"), thresholds, n_boot=n_boot, seed=seed)
    metric = {"auroc": roc_auc_score, "auprc": average_precision_score,
              "accuracy": lambda t, s, thr: accuracy_score(t, s >= thr)}  # fmt: skip
    resamples = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))  # the documented matrix
    for name, fn in metric.items():

        def value(idx: np.ndarray, s: np.ndarray, thr: float, fn=fn, name=name) -> float:
            if name == "accuracy":
                return fn(y[idx], s[idx], thr)
            return fn(y[idx], s[idx]) if 0 < y[idx].sum() < len(idx) else np.nan

        diffs = np.array([value(i, a, thresholds[0]) - value(i, b, thresholds[1]) for i in resamples])
        delta = value(np.arange(len(y)), a, thresholds[0]) - value(np.arange(len(y)), b, thresholds[1])
        finite = diffs[np.isfinite(diffs)]
        low, high = np.percentile(finite, [2.5, 97.5])
        p = (1 + np.sum(np.abs(finite - delta) >= abs(delta))) / (1 + len(finite))
        got = fast[name]
        assert got.delta == pytest.approx(delta, abs=1e-12)
        assert (got.ci_low, got.ci_high) == pytest.approx((low, high), abs=1e-12)
        assert got.p_value == pytest.approx(p, abs=1e-12) and got.test == "paired_bootstrap"


def delong_slow(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """DeLong et al. 1988 written plainly: ψ kernel over all positive × negative pairs, structural components,
    their covariance; returns (AUC_a − AUC_b, its variance)."""
    comps10, comps01, aucs = [], [], []
    for s in (a, b):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])  # (m, n)
        aucs.append(psi.mean())
        comps10.append(psi.mean(axis=1))
        comps01.append(psi.mean(axis=0))
    m, n = len(comps10[0]), len(comps01[0])
    s10, s01 = np.cov(np.array(comps10)), np.cov(np.array(comps01))
    s = s10 / m + s01 / n
    return aucs[0] - aucs[1], s[0, 0] + s[1, 1] - 2 * s[0, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_the_quadratic_structural_components_formula(seed: int) -> None:
    y, a, b = fixed_inputs(n=120, seed=seed)
    delta, var = delong_slow(y, a, b)
    got = delong(y, a, b)
    assert got.delta == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    assert got.delta == pytest.approx(delta, abs=1e-12)
    assert got.p_value == pytest.approx(2 * stats.norm.sf(abs(delta) / np.sqrt(var)), rel=1e-9)
    half = stats.norm.ppf(0.975) * np.sqrt(var)
    assert (got.ci_low, got.ci_high) == pytest.approx((delta - half, delta + half), abs=1e-12)


def test_delong_of_a_model_with_itself_is_no_evidence() -> None:
    y, a, _ = fixed_inputs()
    same = delong(y, a, a)
    assert (same.delta, same.p_value) == (0.0, 1.0)


def test_mcnemar_exact_and_chi_square_by_hand() -> None:
    # 3 examples only A gets right, 1 only B gets right, 6 both right: exact two-sided binomial, P(X<=1 or X>=3 | 4)
    y = np.ones(10, dtype=int)
    a = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1])
    b = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    got = mcnemar(y, a, b)
    assert got.test == "mcnemar_exact" and got.delta == pytest.approx(0.2)
    assert got.p_value == pytest.approx(2 * (1 + 4) / 16)  # (C(4,0) + C(4,1)) / 2^4, doubled
    # 30 vs 10 discordant pairs: χ² = (|30 − 10| − 1)² / 40 = 9.025 with 1 df
    y = np.zeros(100, dtype=int)
    a = np.r_[np.zeros(30), np.ones(10), np.zeros(60)]
    b = np.r_[np.ones(30), np.zeros(10), np.zeros(60)]
    got = mcnemar(y, a, b)
    assert got.test == "mcnemar" and got.delta == pytest.approx(0.2)
    assert got.p_value == pytest.approx(stats.chi2.sf(9.025, 1)) and got.p_value == pytest.approx(0.002663, abs=1e-6)
    assert mcnemar(y, a, a).p_value == 1.0


def test_holm_by_hand() -> None:
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max so far 0.06
    got = holm(np.array([0.01, 0.04, np.nan, 0.03, 0.005]))
    np.testing.assert_allclose(got, [0.03, 0.06, np.nan, 0.06, 0.02])
    np.testing.assert_allclose(holm(np.array([0.5, 0.9])), [1.0, 1.0])  # 0.5·2 = 1, then max(1, 0.9·1)


def test_multilabel_resamples_match_a_plain_loop_over_the_documented_resamples() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random((60, 4)) < 0.3).astype(int)
    y[:, 3] = 0
    y[0, 3] = 1  # a rare label: undefined in most resamples, left out of their medians
    a = y + rng.normal(0, 0.8, y.shape)
    b = y + rng.normal(0, 3.0, y.shape)
    n_boot, seed = 20, 11
    boot_a, boot_b = (multilabel_resampled(y, s, n_boot, seed) for s in (a, b))
    resamples = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    for i, idx in enumerate(resamples):
        for name, fn in (("auroc_median", roc_auc_score), ("auprc_median", average_precision_score)):
            for boot, s in ((boot_a, a), (boot_b, b)):
                values = [fn(y[idx, j], s[idx, j]) for j in range(4) if 0 < y[idx, j].sum() < len(idx)]
                assert boot.samples[name][i] == pytest.approx(np.median(values)), (name, i)
    many_a, many_b = (multilabel_resampled(y, s, 500, seed) for s in (a, b))  # the first 20 resamples are the above
    np.testing.assert_array_equal(many_a.samples["auroc_median"][:n_boot], boot_a.samples["auroc_median"])
    test = paired_from_resamples("auroc_median", many_a, many_b)
    assert test.delta == pytest.approx(boot_a.point["auroc_median"] - boot_b.point["auroc_median"])
    assert test.delta > 0 and test.ci_low > 0 and test.p_value < 0.05  # a clearly better model is distinguished
    same = paired_from_resamples("auroc_median", boot_a, multilabel_resampled(y, a, n_boot, seed))
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
