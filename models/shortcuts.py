"""Shortcut baselines: what a score owes to features that are not the regulatory grammar.

- `gc_length`: L2 logistic regression on each branch's GC content (fraction of G/C among the non-N bases) and
  length (real bases).
- `length_only`: the same on length alone (constant on fixed-length tasks, so it scores at chance there).
- On regression targets (`IOSpec.target = "regression"`), `gc_length` and `length_only` are ridge regressions on the
  same features (`alpha = 1 / C`).
- `epi_distance` (enhancer–promoter pair tasks): logistic regression on log10 of the distance between the enhancer
  and promoter midpoints, read from the pair ids (`CELL|chrN:start-end::CELL|chrN:start-end`, as the TargetFinder
  pair tables name them).
- `element_propensity` (pair tasks): how often each enhancer and each promoter is positive in training (Mao et al.
  2018, "Pitfalls of predicting enhancer–promoter interactions": a model can score by memorising elements).
  Rates are smoothed towards the training base rate with `prior_strength` pseudo-pairs, left-one-out on the
  training pairs the head is fitted on, and the base rate for an element unseen in training; a logistic regression
  combines the logits of the two rates. Shifted training copies (`@shift` ids) are left out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import is_regressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.config import Setting, Settings
from harness.plugins import register_model
from harness.spec import Dataset, IOSpec, ModelPlugin

_GC_CODES = (1, 2)  # C, G in harness.data.encode.ALPHABET "ACGTN"
_N_CODE = 4
_CHUNK = 4096  # rows per take() when computing sequence features
_ELEMENT = re.compile(r"^[^|]+\|(?P<chrom>[^:|\s]+):(?P<start>\d+)-(?P<end>\d+)$")


class LinearShortcut:
    """A logistic (or ridge) regression on a few shortcut features; `score(dataset)` gives probabilities (or
    predictions) `(N,)`."""

    def __init__(self, name: str, features: Any, model: Pipeline) -> None:
        self.name, self.features, self.model = name, features, model

    @property
    def n_params(self) -> int:
        head = self.model[-1]
        return int(np.size(head.coef_) + np.size(head.intercept_))

    def score(self, dataset: Dataset) -> np.ndarray:
        if is_regressor(self.model):
            return np.asarray(self.model.predict(self.features(dataset)), dtype=np.float64)
        return self.model.predict_proba(self.features(dataset))[:, 1]


def _fit(name: str, features: Any, train: Dataset, io: IOSpec, C: float) -> LinearShortcut:
    """Fit the logistic regression (ridge for regression targets) on `features(train) (N, D)`."""
    if io.target == "regression":
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0 / C))
        model.fit(features(train), np.asarray(train.labels, dtype=np.float64))
        return LinearShortcut(name, features, model)
    return _fit_on(name, features, features(train), _binary_labels(train, io, name), C)


def _fit_on(name: str, features: Any, x: np.ndarray, y: np.ndarray, C: float) -> LinearShortcut:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    model.fit(x, y)
    return LinearShortcut(name, features, model)


def _binary_labels(dataset: Dataset, io: IOSpec, name: str) -> np.ndarray:
    reason = binary_only(io)  # the harness checks this before any data loads; direct callers get it here
    if reason:
        raise ValueError(f"{name}: {reason}")
    return np.asarray(dataset.labels).astype(np.int64)


def sequence_features(dataset: Dataset) -> np.ndarray:
    """`(N, 2 × branches)`: per branch, GC fraction of the non-N bases (0 if none) and length in bases."""
    blocks = []
    for lo in range(0, len(dataset), _CHUNK):
        inputs = dataset.take(np.arange(lo, min(lo + _CHUNK, len(dataset)))).inputs
        columns = []
        for codes, mask in zip(inputs[0::2], inputs[1::2], strict=True):
            called = mask & (codes != _N_CODE)
            gc = (np.isin(codes, _GC_CODES) & called).sum(axis=1)
            columns += [gc / np.maximum(called.sum(axis=1), 1), mask.sum(axis=1)]
        blocks.append(np.stack(columns, axis=1).astype(np.float64))
    return np.concatenate(blocks)


def length_features(dataset: Dataset) -> np.ndarray:
    """`(N, branches)`: the length of each branch in bases."""
    return sequence_features(dataset)[:, 1::2]


def fit_gc_length(train: Dataset, val: Dataset, io: IOSpec, *, C: float) -> LinearShortcut:
    return _fit("gc_length", sequence_features, train, io, C)


def fit_length_only(train: Dataset, val: Dataset, io: IOSpec, *, C: float) -> LinearShortcut:
    return _fit("length_only", length_features, train, io, C)


def pair_elements(ids: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Enhancer names, promoter names and `@shift` flags `(N,)` of pair ids `ENHANCER::PROMOTER[@shift...]`."""
    base = np.char.partition(np.asarray(ids).astype(str), "@")
    shifted = base[:, 1] == "@"
    parts = np.char.partition(base[:, 0], "::")
    bad = np.flatnonzero(parts[:, 1] != "::")
    if bad.size:
        raise ValueError(f"{name}: needs enhancer–promoter pair ids ENHANCER::PROMOTER (an EPI pair task); got id "
                         f"{ids[bad[0]]!r}")  # fmt: skip
    return parts[:, 0], parts[:, 2], shifted


def distance_features(dataset: Dataset) -> np.ndarray:
    """`(N, 1)`: log10(1 + |enhancer midpoint − promoter midpoint|) from the pair ids (`CELL|chrN:start-end`)."""
    enhancers, promoters, _ = pair_elements(dataset.ids, "epi_distance")
    out = np.empty((len(enhancers), 1))
    for i, (e, p) in enumerate(zip(enhancers, promoters, strict=True)):
        me, mp = _ELEMENT.match(e), _ELEMENT.match(p)
        if me is None or mp is None:
            raise ValueError(f"epi_distance: pair id {e}::{p} does not name coordinates (CELL|chrN:start-end)")
        if me["chrom"] != mp["chrom"]:
            raise ValueError(f"epi_distance: pair {e}::{p} joins two chromosomes; its distance is undefined")
        mid_e, mid_p = (int(me["start"]) + int(me["end"])) // 2, (int(mp["start"]) + int(mp["end"])) // 2
        out[i, 0] = np.log10(1 + abs(mid_e - mid_p))
    return out


def fit_epi_distance(train: Dataset, val: Dataset, io: IOSpec, *, C: float) -> LinearShortcut:
    return _fit("epi_distance", distance_features, train, io, C)


class ElementRates:
    """Smoothed training positive rates of the enhancers and promoters; `__call__(dataset)` → `(N, 2)` logits."""

    def __init__(self, ids: np.ndarray, y: np.ndarray, prior_strength: float) -> None:
        enhancers, promoters, shifted = pair_elements(ids, "element_propensity")
        y = y[~shifted]
        self.prior, self.strength = float(y.mean()), prior_strength
        self.counts = [self._count(names[~shifted], y) for names in (enhancers, promoters)]

    @staticmethod
    def _count(names: np.ndarray, y: np.ndarray) -> tuple[Counter, Counter]:
        return Counter(names.tolist()), Counter(names[y == 1].tolist())

    def arrays(self) -> dict[str, np.ndarray]:
        """The rates as arrays: `prior`, `strength`, and per side j (0 enhancers, 1 promoters) `names_j (E,)` str,
        `total_j (E,)`, `positive_j (E,)` pair counts."""
        out = {"prior": np.asarray(self.prior), "strength": np.asarray(self.strength)}
        for j, (total, positive) in enumerate(self.counts):
            names = list(total)
            out |= {f"names_{j}": np.asarray(names, dtype=str), f"total_{j}": np.asarray([total[x] for x in names]),
                    f"positive_{j}": np.asarray([positive[x] for x in names], dtype=np.int64)}  # fmt: skip
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ElementRates:
        """The rates saved by `arrays()`."""
        rates = cls.__new__(cls)
        rates.prior, rates.strength = float(arrays["prior"]), float(arrays["strength"])
        rates.counts = [(Counter(dict(zip(arrays[f"names_{j}"].tolist(), arrays[f"total_{j}"].tolist(), strict=True))),
                         Counter(dict(zip(arrays[f"names_{j}"].tolist(), arrays[f"positive_{j}"].tolist(),
                                          strict=True)))) for j in (0, 1)]  # fmt: skip
        return rates

    def logits(self, ids: np.ndarray, leave_out: np.ndarray | None = None) -> np.ndarray:
        """`(N, 2)` logits of the enhancer and promoter rates; `leave_out (N,)` labels of pairs to leave out."""
        enhancers, promoters, _ = pair_elements(ids, "element_propensity")
        out = np.empty((len(enhancers), 2))
        for j, (names, (total, positive)) in enumerate(zip((enhancers, promoters), self.counts, strict=True)):
            n = np.array([total[x] for x in names.tolist()], dtype=np.float64)
            k = np.array([positive[x] for x in names.tolist()], dtype=np.float64)
            if leave_out is not None:
                n, k = n - 1, k - leave_out
            rate = (k + self.strength * self.prior) / (n + self.strength)
            rate = np.clip(rate, 1e-6, 1 - 1e-6)
            out[:, j] = np.log(rate / (1 - rate))
        return out

    def __call__(self, dataset: Dataset) -> np.ndarray:
        return self.logits(dataset.ids)


def fit_element_propensity(
    train: Dataset, val: Dataset, io: IOSpec, *, C: float, prior_strength: float
) -> LinearShortcut:
    if prior_strength <= 0:
        raise ValueError(f"element_propensity: prior_strength={prior_strength!r} must be > 0")
    y = _binary_labels(train, io, "element_propensity")
    rates = ElementRates(train.ids, y, prior_strength)
    keep = np.flatnonzero(~pair_elements(train.ids, "element_propensity")[2])
    x = rates.logits(train.ids[keep], leave_out=y[keep])
    return _fit_on("element_propensity", rates, x, y[keep], C)


def save_linear(predictor: LinearShortcut) -> dict[str, Any]:
    return {"model": predictor.model}


def loader(name: str, features: Any) -> Any:
    """`load_state` of a shortcut whose features are the function `features`."""

    def load_state(state: Mapping[str, Any], io: IOSpec, hp: Mapping[str, Any]) -> LinearShortcut:
        return LinearShortcut(name, features, state["model"])

    return load_state


def save_propensity(predictor: LinearShortcut) -> dict[str, Any]:
    return {"model": predictor.model, **predictor.features.arrays()}


def load_propensity(state: Mapping[str, Any], io: IOSpec, hp: Mapping[str, Any]) -> LinearShortcut:
    return LinearShortcut("element_propensity", ElementRates.from_arrays(state), state["model"])


def search_c(trial: Any) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}


def search_propensity(trial: Any) -> dict[str, Any]:
    return {**search_c(trial), "prior_strength": trial.suggest_float("prior_strength", 0.1, 10.0, log=True)}


C_ONLY = Settings({"C": Setting(1.0, gt=0)})  # inverse L2 strength of the logistic regression
PAPER = "shortcut baseline (what a score owes to composition, length, distance or element identity)"


def binary_only(io: IOSpec) -> str | None:
    """Why a sequence shortcut cannot run on a task with `io` (checked before any data loads), or None."""
    return None if io.target == "binary" else f"shortcut baselines score binary tasks only, not {io.target} ones"


def binary_or_regression(io: IOSpec) -> str | None:
    """Why a sequence shortcut cannot run on a task with `io` (checked before any data loads), or None."""
    if io.target == "regression":
        return None
    return binary_only(io)


def binary_pairs_only(io: IOSpec) -> str | None:
    """Why an EPI shortcut cannot run on a task with `io`, or None."""
    if io.inputs != "seq_pair":
        return "needs enhancer–promoter pairs (an EPI pair task)"
    return binary_only(io)


GC_LENGTH, LENGTH_ONLY, EPI_DISTANCE, ELEMENT_PROPENSITY = (
    register_model(ModelPlugin(
        name="gc_length", description="shortcut: logistic regression on GC content + length", native_inputs="seq",
        defaults=C_ONLY, search_space=search_c, fit_sklearn=fit_gc_length, check_io=binary_or_regression,
        save_state=save_linear, load_state=loader("gc_length", sequence_features), shortcut=True, paper=PAPER)),
    register_model(ModelPlugin(
        name="length_only", description="shortcut: logistic regression on sequence length", native_inputs="seq",
        defaults=C_ONLY, search_space=search_c, fit_sklearn=fit_length_only, check_io=binary_or_regression,
        save_state=save_linear, load_state=loader("length_only", length_features), shortcut=True, paper=PAPER)),
    register_model(ModelPlugin(
        name="epi_distance", description="shortcut (EPI pairs): logistic regression on log enhancer–promoter distance",
        native_inputs="seq_pair", defaults=C_ONLY, search_space=search_c, fit_sklearn=fit_epi_distance,
        check_io=binary_pairs_only, save_state=save_linear, load_state=loader("epi_distance", distance_features),
        shortcut=True, paper=PAPER)),
    register_model(ModelPlugin(
        name="element_propensity", description="shortcut (EPI pairs): training positive rate of each enhancer and "
        "promoter", native_inputs="seq_pair", defaults=C_ONLY.updated({"prior_strength": Setting(1.0, gt=0)}),
        search_space=search_propensity, fit_sklearn=fit_element_propensity, check_io=binary_pairs_only,
        save_state=save_propensity, load_state=load_propensity, shortcut=True, paper=PAPER)),
)  # fmt: skip
