"""TargetFinder's gradient-boosted trees on enhancer / promoter / window peak features.

Whalen, Truty & Pollard 2016, "Enhancer–promoter interactions are encoded by complex genomic signatures on looping
chromatin" (Nature Genetics 48:488). Defaults are the paper's: 4000 trees, learning rate 0.1, depth 5, log2
features per split (`backend=exact`: sklearn `GradientBoostingClassifier`). `backend=hist` uses
`HistGradientBoostingClassifier` (binned, much faster; the same number of features per split, given as a fraction).
Feature tables only (e.g. `epi.targetfinder_nhek`); sequence tasks raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

from harness.config import Setting, Settings
from harness.data.datasets import FeatureDataset
from harness.plugins import register_model
from harness.spec import Dataset, IOSpec, ModelPlugin

BACKENDS = ("exact", "hist")
MAX_FEATURES = ("log2", "sqrt", "all")


class TargetFinderGBM:
    """A fitted booster; `score(dataset)` gives `(N,)` interaction probabilities."""

    n_params = 0  # boosted trees have no parameter count comparable to a network's

    def __init__(self, model: GradientBoostingClassifier | HistGradientBoostingClassifier) -> None:
        self.model = model

    def score(self, dataset: Dataset) -> np.ndarray:
        return self.model.predict_proba(_features(dataset))[:, 1]


def _features(dataset: Dataset) -> np.ndarray:
    if not isinstance(dataset, FeatureDataset):
        raise ValueError(
            f"targetfinder_gbm needs a feature table (e.g. task epi.targetfinder_nhek), got a "
            f"{type(dataset).__name__} of sequences"
        )
    return dataset.features


def make_estimator(
    backend: str, n_estimators: int, learning_rate: float, max_depth: int, max_features: str, seed: int, n_features: int
) -> GradientBoostingClassifier | HistGradientBoostingClassifier:
    """The sklearn booster for `backend` (exact or hist); `max_features` is log2, sqrt or all (per split)."""
    if backend not in BACKENDS:
        raise ValueError(f"targetfinder_gbm: backend={backend!r} must be one of {', '.join(BACKENDS)}")
    per_split = {"log2": np.log2(n_features), "sqrt": np.sqrt(n_features), "all": float(n_features)}
    if max_features not in per_split:
        raise ValueError(f"targetfinder_gbm: max_features={max_features!r} must be one of {', '.join(per_split)}")
    if backend == "exact":
        return GradientBoostingClassifier(n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
                                          max_features=None if max_features == "all" else max_features,
                                          random_state=seed)  # fmt: skip
    fraction = min(1.0, max(1.0, per_split[max_features]) / n_features)
    return HistGradientBoostingClassifier(max_iter=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
                                          max_features=fraction, early_stopping=False, random_state=seed)  # fmt: skip


def fit_sklearn(
    train: Dataset,
    val: Dataset,
    io: IOSpec,
    *,
    n_estimators: int,
    learning_rate: float,
    max_depth: int,
    max_features: str,
    backend: str,
    seed: int,
) -> TargetFinderGBM:
    """Fit on `train` (a FeatureDataset); `val` is unused (no early stopping, as in TargetFinder)."""
    if io.target != "binary":
        raise ValueError(f"targetfinder_gbm: binary tasks only, got target {io.target!r}")
    features = _features(train)
    model = make_estimator(backend, n_estimators, learning_rate, max_depth, max_features, seed, features.shape[1])
    model.fit(features, np.asarray(train.labels).astype(np.int64))
    return TargetFinderGBM(model)


def save_state(predictor: TargetFinderGBM) -> dict[str, Any]:
    return {"model": predictor.model}


def load_state(state: Mapping[str, Any], io: IOSpec, hp: Mapping[str, Any]) -> TargetFinderGBM:
    return TargetFinderGBM(state["model"])


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 4000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "max_features": trial.suggest_categorical("max_features", ["log2", "sqrt", "all"]),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="targetfinder_gbm",
        description="TargetFinder gradient boosting on enhancer/promoter/window peak features (feature tables)",
        native_inputs="features",
        defaults=Settings(
            {
                "n_estimators": Setting(4000, ge=1, le=100_000),
                "learning_rate": Setting(0.1, gt=0, le=1),
                "max_depth": Setting(5, ge=1, le=64),
                "max_features": Setting("log2", choices=MAX_FEATURES),
                "backend": Setting("exact", choices=BACKENDS),
                "seed": Setting(0, ge=0),
            }
        ),
        tiny={"n_estimators": 30, "max_depth": 3},
        search_space=search_space,
        fit_sklearn=fit_sklearn,
        save_state=save_state,
        load_state=load_state,
        paper="Whalen, Truty & Pollard 2016, Nature Genetics 48:488 (TargetFinder)",
    )
)
