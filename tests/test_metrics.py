"""Metrics and bootstrap CIs against scikit-learn, on seeded data with ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from harness.evaluation.bootstrap import (
    bootstrap_binary,
    bootstrap_binary_samples,
    bootstrap_multilabel_medians,
    bootstrap_statistic,
)
from harness.evaluation.metrics import BINARY_METRICS, binary_metrics, f1_optimal_threshold, multilabel_metrics


def _noisy(rng: np.random.Generator, n: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`(n,)` labels and informative scores in [0, 1]; rounding to `decimals` creates ties."""
    y = rng.integers(0, 2, n)
    s = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    return y, (np.round(s, decimals) if decimals is not None else s)


def test_perfect_scores_give_one() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    m = binary_metrics(y, y * 0.9 + 0.05)
    for name in ("accuracy", "f1", "mcc", "auroc", "auprc", "precision", "recall"):
        assert m[name] == pytest.approx(1.0), name


def test_binary_matches_sklearn_and_one_class_is_nan(rng: np.random.Generator) -> None:
    y, s = _noisy(rng, 400, decimals=1)
    m = binary_metrics(y, s, threshold=0.6)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert m["auprc"] == pytest.approx(average_precision_score(y, s))
    assert m["accuracy"] == pytest.approx(np.mean((s >= 0.6) == y))
    one_class = binary_metrics(np.ones(5), np.linspace(0, 1, 5))
    assert np.isnan(one_class["auroc"]) and np.isnan(one_class["auprc"])
    assert one_class["recall"] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([0, 1], [0.5], "differ in length"),
        ([], [], "empty"),
        ([0, 2], [0.1, 0.2], "only 0 and 1"),
        ([0, 1], [0.1, np.nan], "non-finite"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_input_validation(y: list, s: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_metrics(np.array(y), np.array(s))


def test_f1_optimal_threshold_known_case() -> None:
    y = np.array([0, 0, 1, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    # t=0.3 → P=3/4, R=1, F1=6/7 beats t=0.8 (F1=0.8) and t=0.1 (F1=2/3).
    assert f1_optimal_threshold(y, s) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="positive"):
        f1_optimal_threshold(np.zeros(3), s[:3])


def test_vectorised_resamples_equal_sklearn_with_ties(rng: np.random.Generator) -> None:
    y, s = _noisy(rng, 150, decimals=1)  # 11 distinct scores: heavy ties
    samples = bootstrap_binary_samples(y, s, threshold=0.5, n_boot=12, seed=7)
    idx = np.random.default_rng(7).integers(0, len(y), size=(12, len(y)))  # the documented resample matrix
    for b in range(12):
        yb, sb = y[idx[b]], s[idx[b]]
        assert samples["auroc"][b] == pytest.approx(roc_auc_score(yb, sb), abs=1e-12)
        assert samples["auprc"][b] == pytest.approx(average_precision_score(yb, sb), abs=1e-12)
        point = binary_metrics(yb, sb, threshold=0.5)
        for name in BINARY_METRICS:
            assert samples[name][b] == pytest.approx(point[name], abs=1e-12), name


def test_one_class_resamples_are_dropped() -> None:
    y, s = np.array([0, 0, 0, 0, 0, 1]), np.linspace(0, 1, 6)
    samples = bootstrap_binary_samples(y, s, n_boot=200, seed=0)
    undefined = np.isnan(samples["auroc"])
    assert 0 < undefined.sum() < 200  # P(no positive) = (5/6)^6 ≈ 0.33
    assert not np.isnan(samples["accuracy"]).any()
    low, high = bootstrap_binary(y, s, n_boot=200, seed=0)["auroc"]
    assert low == high == pytest.approx(1.0)  # every defined resample ranks its positive first


def test_bootstrap_ci_contains_estimate_shrinks_and_is_seeded(rng: np.random.Generator) -> None:
    y_small, s_small = _noisy(rng, 200)
    y_big, s_big = _noisy(rng, 5000)
    small = bootstrap_binary(y_small, s_small, n_boot=300, seed=1)
    big = bootstrap_binary(y_big, s_big, n_boot=300, seed=1)
    point = binary_metrics(y_small, s_small)
    for name in BINARY_METRICS:
        assert small[name][0] <= point[name] <= small[name][1], name
        assert big[name][1] - big[name][0] < small[name][1] - small[name][0], name
    assert bootstrap_binary(y_small, s_small, n_boot=300, seed=1) == small
    assert bootstrap_binary(y_small, s_small, n_boot=300, seed=2) != small


def test_bootstrap_statistic_loop_agrees_with_vectorised(rng: np.random.Generator) -> None:
    y, s = _noisy(rng, 120, decimals=2)

    def auroc(idx: np.ndarray) -> float:
        return roc_auc_score(y[idx], s[idx]) if 0 < y[idx].sum() < len(idx) else float("nan")

    loop = bootstrap_statistic(auroc, len(y), n_boot=100, seed=3)
    assert loop == pytest.approx(bootstrap_binary(y, s, n_boot=100, seed=3)["auroc"], abs=1e-12)


def _multilabel(rng: np.random.Generator, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random((n, c)) < 0.3).astype(int)
    return y, np.round(0.4 * y + 0.6 * rng.random((n, c)), 2)


def test_multilabel_matches_sklearn_and_counts_skipped(rng: np.random.Generator) -> None:
    y, s = _multilabel(rng, 300, 8)
    y[:, 2], y[:, 5] = 0, 1  # no positives / no negatives
    summary, per_label = multilabel_metrics(y, s)
    assert summary["n_labels_scored"] == 6 and summary["n_labels_skipped"] == 2
    assert per_label[["auroc", "auprc"]].iloc[[2, 5]].isna().all().all()
    assert list(per_label["n_pos"]) == list(y.sum(axis=0))
    scored = [c for c in range(8) if c not in (2, 5)]
    expected_auroc = [roc_auc_score(y[:, c], s[:, c]) for c in scored]
    expected_ap = [average_precision_score(y[:, c], s[:, c]) for c in scored]
    np.testing.assert_allclose(per_label["auroc"].iloc[scored], expected_auroc, atol=1e-12)
    np.testing.assert_allclose(per_label["auprc"].iloc[scored], expected_ap, atol=1e-12)
    assert summary["auroc_median"] == pytest.approx(np.median(expected_auroc))
    assert summary["auprc_mean"] == pytest.approx(np.mean(expected_ap))


def test_multilabel_group_medians_by_hand() -> None:
    y = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]])
    s = np.array([[0.1, 0.9, 0.3], [0.9, 0.8, 0.2], [0.2, 0.1, 0.9], [0.8, 0.2, 0.6]])
    # Per-label AUROC: label 0 → 1.0, label 1 → 0.0, label 2 → 0.0.
    summary, _ = multilabel_metrics(y, s, groups={"DNase": np.array([0, 1]), "TF": np.array([2])})
    assert summary["auroc_median_dnase"] == pytest.approx(0.5)
    assert summary["auroc_mean_tf"] == pytest.approx(0.0)
    assert summary["auroc_median"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="label indices"):
        multilabel_metrics(y, s, groups={"bad": np.array([3])})


def test_bootstrap_multilabel_medians(rng: np.random.Generator) -> None:
    y, s = _multilabel(rng, 400, 12)
    groups = {"DNase": np.arange(4), "TF": np.arange(4, 12)}
    cis = bootstrap_multilabel_medians(y, s, groups, n_boot=60, seed=0)
    assert set(cis) == {"auroc_median", "auroc_median_dnase", "auroc_median_tf"}
    summary, _ = multilabel_metrics(y, s, groups)
    for key, (low, high) in cis.items():
        assert low <= summary[key] <= high, key
    assert bootstrap_multilabel_medians(y, s, groups, n_boot=60, seed=0) == cis

    def median_auroc(idx: np.ndarray) -> float:
        return float(np.median([roc_auc_score(y[idx, c], s[idx, c]) for c in range(12)]))

    loop = bootstrap_statistic(median_auroc, len(y), n_boot=20, seed=5)
    assert loop == pytest.approx(bootstrap_multilabel_medians(y, s, n_boot=20, seed=5)["auroc_median"], abs=1e-12)
