"""K-mer spectrum + logistic regression: the classic alignment-free baseline.

After Lee, Karchin & Beer 2011, "Discriminative prediction of mammalian enhancers from DNA sequence" (Genome
Research 21:2167) — here with plain k-mer frequencies and an L2-regularised linear model instead of a gapped-k-mer
SVM. Features: per branch, the frequencies of all 4**k k-mers (N-free, real positions only), concatenated over the
branches of a pair task, scaled to unit variance; one logistic regression per label. Regression targets: ridge
regression on the same features (`alpha = 1 / C`, so `C` keeps its meaning of inverse regularisation strength).
Input length: any (a sequence becomes 4**k frequencies, counted in chunks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.config import Setting, Settings
from harness.plugins import register_model
from harness.spec import Dataset, IOSpec, ModelPlugin
from models._kmer_features import dataset_spectra


class KmerLogReg:
    """A fitted k-mer logistic (or, for `target` regression, ridge) regression; `score(dataset)` gives
    probabilities (regression: predictions) `(N,)` or `(N, C)`."""

    def __init__(self, k: int, model: Pipeline | OneVsRestClassifier, target: str) -> None:
        self.k, self.model, self.target = k, model, target

    @property
    def n_params(self) -> int:
        """Fitted coefficients and intercepts of the linear model(s)."""
        heads = self.model.estimators_ if self.target == "multilabel" else [self.model]
        return sum(int(np.size(h[-1].coef_) + np.size(h[-1].intercept_)) for h in heads)

    def score(self, dataset: Dataset) -> np.ndarray:
        features, _ = dataset_spectra(dataset, self.k)
        if self.target == "regression":
            return np.asarray(self.model.predict(features), dtype=np.float64)
        proba = self.model.predict_proba(features)
        return proba if self.target == "multilabel" else proba[:, 1]


def fit_sklearn(
    train: Dataset,
    val: Dataset,
    io: IOSpec,
    *,
    k: int,
    C: float,
    class_weight: str | None,
    max_iter: int,
) -> KmerLogReg:
    """Fit on `train`; `val` is not needed (no early stopping; hyperparameters are chosen by the tuner)."""
    if class_weight not in ("none", None, "balanced"):
        raise ValueError(f"kmer_logreg: class_weight={class_weight!r} must be none or balanced")
    features, y = dataset_spectra(train, k)
    if io.target == "regression":
        ridge = make_pipeline(StandardScaler(with_mean=False), Ridge(alpha=1.0 / C))
        ridge.fit(features, y.astype(np.float64))
        return KmerLogReg(k, ridge, io.target)
    pipeline = make_pipeline(
        StandardScaler(with_mean=False),  # sparse-safe; makes C comparable across k
        LogisticRegression(C=C, max_iter=max_iter, class_weight=None if class_weight in ("none", None) else "balanced"),
    )
    model = OneVsRestClassifier(pipeline) if io.target == "multilabel" else pipeline
    model.fit(features, y.astype(np.int64))
    return KmerLogReg(k, model, io.target)


def save_state(predictor: KmerLogReg) -> dict[str, Any]:
    return {"model": predictor.model}


def load_state(state: Mapping[str, Any], io: IOSpec, hp: Mapping[str, Any]) -> KmerLogReg:
    return KmerLogReg(int(hp["k"]), state["model"], io.target)


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "k": trial.suggest_int("k", 2, 6),
        "C": trial.suggest_float("C", 1e-3, 1e2, log=True),
        "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="kmer_logreg",
        description="k-mer spectrum (frequencies of all 4^k k-mers) + L2 logistic regression baseline",
        native_inputs="seq",
        defaults=Settings(
            {
                "k": Setting(4, ge=1, le=8),  # 4**k features per branch
                "C": Setting(1.0, gt=0),
                "class_weight": Setting("none", choices=("none", "balanced")),
                "max_iter": Setting(2000, ge=1),
            }
        ),
        tiny={"max_iter": 500},
        search_space=search_space,
        fit_sklearn=fit_sklearn,
        save_state=save_state,
        load_state=load_state,
        paper="Lee, Karchin & Beer 2011, Genome Research 21:2167 (k-mer spectrum classifiers)",
    )
)
