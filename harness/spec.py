"""The plugin contract shared by tasks, models and the harness.

A task declares an `IOSpec`; a model plugin builds an encoder for that spec; the harness adds the
adapter and the output head (`harness.training.modeling`). Tasks hand out `Dataset`s whose `take(idx)` returns a
`Batch` of numpy arrays; models take those arrays as tensors, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

InputKind = Literal["seq", "seq_pair", "features"]
TargetKind = Literal["binary", "multilabel"]


@dataclass(frozen=True)
class IOSpec:
    """What a task feeds a model and what it expects back."""

    inputs: InputKind  # "features": a precomputed feature table (FeatureDataset), for feature-table models only
    lengths: tuple[int, ...]  # (L,) or (L_enhancer, L_promoter); 0 = variable length
    n_outputs: int  # 1 for binary, number of labels for multi-label
    target: TargetKind
    label_names: tuple[str, ...] = ()

    @property
    def n_branches(self) -> int:
        return 2 if self.inputs == "seq_pair" else 1


@dataclass(frozen=True)
class Batch:
    """One mini-batch as numpy arrays.

    inputs: per branch `codes (B, L) uint8` then `mask (B, L) bool` (flattened, so a pair task gives
        `(codes_e, mask_e, codes_p, mask_p)`); a feature dataset gives `(features (B, D) float32,)`.
    y: `(B,)` float32 for binary targets, `(B, C)` float32 for multi-label.
    """

    inputs: tuple[np.ndarray, ...]
    y: np.ndarray


@runtime_checkable
class Dataset(Protocol):
    """A split of a task. Rows are addressed by integer index."""

    def __len__(self) -> int: ...

    @property
    def labels(self) -> np.ndarray: ...  # (N,) or (N, C) float32

    @property
    def ids(self) -> np.ndarray: ...  # (N,) str

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch: ...


@runtime_checkable
class Task(Protocol):
    """A benchmark task: fixed, seeded splits plus its metrics."""

    name: str
    io: IOSpec
    primary_metric: str  # always maximised, e.g. "auroc"
    split_protocol: str  # e.g. "official_test+stratified_val", "chromosome"
    synthetic: bool

    def splits(self) -> Mapping[str, Dataset]: ...  # "train", "val", "test"

    def metrics(self, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]: ...

    def digest(self) -> str: ...  # content digest of the data behind the splits


@dataclass(frozen=True)
class ModelPlugin:
    """A registered model.

    build: `build(io, **hp) -> nn.Module` mapping the task's batch inputs to features `(B, out_dim)`;
        the module has an integer attribute `out_dim`. Native pair models get `io.n_branches == 1`
        on single-sequence tasks and must then build one branch. Sklearn plugins leave it None.
    native_inputs: the input kind the paper's model was designed for; a "seq" model on a pair task
        runs through the shared siamese adapter in `harness.training.modeling`.
    search_space: `search_space(trial) -> dict` over the model's hyperparameters; `trial` is any object
        with optuna's `suggest_*` methods (model files never import optuna).
    defaults: the paper's configuration. tiny: overrides giving a small, fast variant for tests.
    fit_sklearn: for non-torch baselines, `fit_sklearn(train, val, io, **hp) -> estimator` with
        `predict_proba`-like `score(dataset) -> (N,) or (N, C)` probabilities.
    featurize: optional `featurize(task, splits, **hp) -> splits` computed once (e.g. frozen embeddings).
    inspect: optional `inspect(predictor, splits) -> {artifact_name: matplotlib Figure}` logged with the run
        (e.g. EPLAE's latent-space PCA).
    train_defaults: the model's own training recipe (e.g. reverse-complement augmentation), applied under any
        `--set train.*` the user gives.
    check: optional `check(hp)` raising (ValueError / FileNotFoundError with the reason) when a prerequisite is
        missing, e.g. a language-model checkpoint; called before any data is loaded or trained on.
    """

    name: str
    description: str
    native_inputs: InputKind
    defaults: Mapping[str, Any]
    search_space: Callable[[Any], dict[str, Any]]
    tiny: Mapping[str, Any] = field(default_factory=dict)
    build: Callable[..., Any] | None = None
    fit_sklearn: Callable[..., Any] | None = None
    featurize: Callable[..., Any] | None = None
    inspect: Callable[..., dict[str, Any]] | None = None
    check: Callable[[Mapping[str, Any]], Any] | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""

    @property
    def is_torch(self) -> bool:
        return self.build is not None
