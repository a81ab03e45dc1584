"""The plugin contract: every member the harness reads from a task, a dataset, an encoder or a predictor.

A task declares an `IOSpec`; a model plugin builds an `Encoder` for that spec; the harness adds the adapter and
the output head (`harness.training.modeling`). Tasks hand out `Splits` of `Dataset`s whose `take(idx)` returns a
`Batch` of numpy arrays; encoders take those arrays as tensors, in the same order. A trained model is a
`Predictor`. Optional members are declared here with their defaults: a plugin class that has them subclasses the
protocol (`class MyTask(Task)`, `class MyEncoder(nn.Module, Encoder)`) and overrides what it provides; the harness
reads them directly and never probes a plugin with getattr/hasattr.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch

InputKind = Literal["seq", "seq_pair", "features"]
TargetKind = Literal["binary", "multilabel", "regression"]


@dataclass(frozen=True)
class IOSpec:
    """What a task feeds a model and what it expects back."""

    inputs: InputKind  # "features": a precomputed feature table (FeatureDataset), for feature-table models only
    lengths: tuple[int, ...]  # (L,) or (L_enhancer, L_promoter); 0 = variable length
    n_outputs: int  # 1 for binary, number of labels for multi-label, number of measured values for regression
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
    y: `(B,)` float32 for binary targets (and one-output regression), `(B, C)` float32 for multi-label (and
        multi-output regression).
    """

    inputs: tuple[np.ndarray, ...]
    y: np.ndarray


@runtime_checkable
class Dataset(Protocol):
    """A split of a task. Rows are addressed by integer index."""

    def __len__(self) -> int: ...

    @property
    def labels(self) -> np.ndarray: ...  # (N,) or (N, C) of 0/1: float32, or uint8 for large multi-label sets;

    # regression: float32 measured values

    @property
    def ids(self) -> np.ndarray: ...  # (N,) str, unique within the task

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch: ...

    def digest(self) -> str: ...  # content digest of this split's inputs and labels


class Splits(dict[str, Dataset]):
    """A task's `{"train", "val", "test"}` datasets as a run uses them.

    stats: measurements of how the splits were made (e.g. a featurize hook's `embed_seq_per_s`), logged as metrics.
    """

    def __init__(self, datasets: Mapping[str, Dataset], stats: Mapping[str, float] | None = None) -> None:
        super().__init__(datasets)
        self.stats: dict[str, float] = dict(stats or {})


@runtime_checkable
class Task(Protocol):
    """A benchmark task: fixed, seeded splits plus its metrics.

    Optional members (defaults here): `label_groups`, label indices per group of a multi-label task (e.g.
    `{"dnase": idx}`) for per-group medians; `audit_lines()`, leakage lines `regbench audit` prints before
    (and without) loading sequences, e.g. EPI pair leakage.
    """

    name: str
    io: IOSpec
    primary_metric: str  # always maximised, e.g. "auroc"
    split_protocol: str  # e.g. "official_test+stratified_val", "chromosome"
    synthetic: bool
    label_groups: Mapping[str, np.ndarray] = MappingProxyType({})

    def splits(self) -> Mapping[str, Dataset]: ...  # "train", "val", "test"

    def metrics(self, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]: ...

    def digest(self) -> str: ...  # content digest of the data behind the splits (loads them)

    def audit_lines(self) -> list[str]:
        return []


@runtime_checkable
class Encoder(Protocol):
    """What a torch plugin's `build(io, **hp)` returns: an `nn.Module` with `forward(*batch_inputs) -> (B, out_dim)`.

    Optional members (defaults here): `aux_loss`, an extra training loss the last forward computed (EPLAE's
    reconstruction), added to the task loss; `has_attention_maps` with `attention_maps(codes (B, L), mask (B, L))
    -> [(B, H, T', T')] per layer` and `k`, the bases per token (1 = base tokens), for `regbench explain --method
    attention`.
    """

    out_dim: int
    aux_loss: torch.Tensor | None = None
    has_attention_maps: ClassVar[bool] = False
    k: int = 1

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor: ...

    def attention_maps(self, codes: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no attention maps")

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups with their own learning rates (e.g. layer-wise decay of a fine-tuned language
        model); `[]`: every parameter trains at `lr`. Parameters left out of the groups (the head) train at `lr`."""
        return []

    def run_metrics(self) -> dict[str, float]:
        """Measurements of the built encoder logged with its run, e.g. trainable vs frozen parameters."""
        return {}


@runtime_checkable
class Predictor(Protocol):
    """A trained model: `score(dataset) -> (N,)` or `(N, C)` probabilities (regression: predicted values);
    `n_params` its parameter count (0 when the model has no meaningful count)."""

    n_params: int

    def score(self, dataset: Dataset) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelPlugin:
    """A registered model.

    build: `build(io, *, **hp) -> Encoder` mapping the task's batch inputs to features `(B, out_dim)`; keyword-only
        arguments without defaults, exactly the keys of `defaults`. Native pair models get `io.n_branches == 1`
        on single-sequence tasks and must then build one branch. Sklearn plugins leave it None.
    native_inputs: the input kind the paper's model was designed for; a "seq" model on a pair task
        runs through the shared siamese adapter in `harness.training.modeling`.
    search_space: `search_space(trial) -> dict` over the model's hyperparameters; `trial` is any object
        with optuna's `suggest_*` methods (model files never import optuna).
    defaults: the paper's configuration, the only copy of the model's defaults: a `harness.config.Settings` table
        declaring each hyperparameter's default, type and accepted range or choices (plus rules across settings,
        e.g. n_heads divides d_model), checked by `merge` for `--set`, study files and searched values. tiny:
        overrides giving a small, fast variant for tests and smoke studies.
    fit_sklearn: for non-torch baselines, `fit_sklearn(train, val, io, *, **hp) -> Predictor`.
    featurize: optional `featurize(task, splits, **hp) -> Splits` computed once before training (e.g. frozen
        embeddings), its measurements in `Splits.stats`.
    inspect: optional `inspect(predictor, splits) -> {artifact_name: matplotlib Figure}` logged with the run
        (e.g. EPLAE's latent-space PCA).
    train_defaults: the model's own training recipe (e.g. reverse-complement augmentation), applied under any
        `--set train.*` the user gives.
    max_length: optional `max_length(hp, io) -> bases`: the longest sequence (per branch) the model takes with
        these settings; longer inputs are refused naming the record (`harness.data.encode.check_lengths`). None:
        any length (the model's docstring says how memory grows with it).
    shortcut: a shortcut baseline (what a score owes to composition, length, distance or element identity): added
        to every benchmark board where its `check_io` accepts the task, unless the study file says `shortcuts: false`.
    train_space: optional `train_space(trial) -> dict` replacing the shared space of `train.*` settings a study
        searches (`harness.tuning.search_space.train_space`), e.g. the lower learning rates of fine-tuning.
    check: optional `check(hp)` raising (ValueError / FileNotFoundError with the reason) when a prerequisite is
        missing, e.g. a language-model checkpoint; called before any data is loaded or trained on.
    check_io: optional `check_io(io) -> reason or None`: why the model cannot run on a task with this `IOSpec`
        beyond the input kind (e.g. a shortcut baseline that scores binary pair tasks only); checked before any
        data is loaded, so a benchmark lists the cell as unable to run.
    save_state / load_state: how a sklearn plugin's fitted predictor is stored without pickle (required with
        `fit_sklearn`): `save_state(predictor) -> {name: numpy array or scikit-learn estimator}` (written with
        skops), `load_state(state, io, hp) -> Predictor`. A torch model is stored as its state dict and rebuilt
        with `build` (`harness.tracking.logged_model`).
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
    check_io: Callable[[IOSpec], str | None] | None = None
    save_state: Callable[[Any], Mapping[str, Any]] | None = None
    load_state: Callable[[Mapping[str, Any], IOSpec, Mapping[str, Any]], Any] | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    max_length: Callable[[Mapping[str, Any], IOSpec], int] | None = None
    train_space: Callable[[Any], dict[str, Any]] | None = None
    shortcut: bool = False
    paper: str = ""

    @property
    def is_torch(self) -> bool:
        return self.build is not None
