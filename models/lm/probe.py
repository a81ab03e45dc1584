"""Linear probe on frozen DNA language-model embeddings.

Zhou et al. 2023, "DNABERT-2: Efficient foundation model and benchmark for multi-species genome" (arXiv:2306.15006;
checkpoint zhihan1996/DNABERT-2-117M); protocol after BEND (Marin et al. 2024, ICLR): the encoder stays frozen, its
pooled embeddings are computed once (`featurize`, cached by `models.lm._embeddings`) and only a head is trained.
The same plugins probe Nucleotide Transformer v2 (Dalla-Torre et al. 2024) or any BERT-like DNA model in Hugging
Face format (`model.checkpoint=/path`, default `$REGBENCH_DNABERT2`), loaded by `models.lm._checkpoint`.

Two registered plugins share `featurize` because a `ModelPlugin` is either torch (`build`) or sklearn
(`fit_sklearn`):
- `dnabert2_probe`: features (B, D) → dropout → the harness's Linear head, i.e. logistic regression trained by the
  harness loop (lr, weight decay from `train.*`).
- `dnabert2_probe_sklearn`: standardised features → scikit-learn LogisticRegression(C) (one-vs-rest if multi-label).

On a pair task (EPI) each branch is embedded and the two vectors concatenated (B, 2D) inside `featurize`, so the
plugins declare `native_inputs="seq_pair"`: the harness's siamese adapter must not wrap them again.
Logged models keep no encoder weights: given sequences instead of features (`regbench predict --run`), they
re-embed them with the checkpoint. The sklearn probe stores the checkpoint's resolved path and digest with its
logistic regression (`save_state`) and refuses a changed checkpoint; the torch probe is rebuilt from its settings
(`model.checkpoint`, or `$REGBENCH_DNABERT2` when that was empty) with its head's weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from harness.config import DEVICE, TRAIN_SETTINGS, Setting, Settings
from harness.data.datasets import Seqs
from harness.plugins import register_model
from harness.spec import Dataset, Encoder, IOSpec, ModelPlugin, Splits, Task
from models.lm._embeddings import (
    POOLINGS,
    EmbedSettings,
    FrozenEmbedder,
    embed_splits,
    hidden_size,
    resolve_checkpoint,
)

PAPER = "Zhou et al. 2023, DNABERT-2 (arXiv:2306.15006); frozen-embedding probes as in BEND (Marin et al. 2024)"
# Sequences of any length: cut into windows of at most max_length tokens, averaged (models.lm._embeddings).
EMBEDDING_DEFAULTS = {
    "checkpoint": Setting("", accepts="a checkpoint folder (empty: $REGBENCH_DNABERT2)"),
    "pooling": Setting("mean", choices=POOLINGS),
    "max_length": Setting(512, ge=3, le=100_000),
    "embed_batch_size": Setting(32, ge=1, le=65536),
    "device": Setting("auto", pattern=DEVICE.pattern, accepts="auto, cpu, mps, cuda or cuda:N"),
    "embed_amp": TRAIN_SETTINGS.entries["amp"],  # the encoder's autocast, as train.amp
}
EMBEDDING_TINY = {"max_length": 64, "embed_batch_size": 16}


def embedder(
    *, checkpoint: str, pooling: str, max_length: int, embed_batch_size: int, device: str, embed_amp: str = "auto"
) -> FrozenEmbedder:
    return FrozenEmbedder(EmbedSettings.create(checkpoint, pooling, max_length, embed_batch_size, device, embed_amp))


def featurize(task: Task, splits: Mapping[str, Dataset], **hp: Any) -> Splits:
    """Each split → FeatureDataset `(N, n_branches · D)` of cached embeddings (head hyperparameters ignored)."""
    return embed_splits(task.name, splits, embedder(**{k: hp[k] for k in EMBEDDING_DEFAULTS}))


class ProbeFeatures(nn.Module, Encoder):
    """`forward(features (B, F)) -> (B, F)` with dropout; given `(codes, mask)` per branch, embeds them first."""

    def __init__(self, embed: FrozenEmbedder, width: int, dropout: float) -> None:
        super().__init__()
        self.embedder = embed  # a plain attribute: the encoder's weights are neither trained nor saved
        self.out_dim = width
        self.dropout = nn.Dropout(dropout)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) == 1:
            return self.dropout(inputs[0])  # (B, F)
        branches = [
            Seqs(codes.cpu().numpy().astype(np.uint8), mask.sum(1).cpu().numpy().astype(np.int32))
            for codes, mask in zip(inputs[0::2], inputs[1::2], strict=True)
        ]
        features = torch.from_numpy(self.embedder.embed_branches(branches)).to(inputs[0].device)  # (B, F)
        return self.dropout(features)


def build(
    io: IOSpec,
    *,
    checkpoint: str,
    pooling: str,
    max_length: int,
    embed_batch_size: int,
    device: str,
    dropout: float,
    embed_amp: str,
) -> ProbeFeatures:
    """Dropout over the embeddings of the task's branches (width n_branches · D); the harness adds the Linear."""
    embed = embedder(checkpoint=checkpoint, pooling=pooling, max_length=max_length,
                     embed_batch_size=embed_batch_size, device=device, embed_amp=embed_amp)  # fmt: skip
    return ProbeFeatures(embed, hidden_size(embed.spec) * io.n_branches, dropout)


class ProbeLogReg:
    """A fitted logistic regression on embeddings; `score(dataset)` → `(N,)` or `(N, C)` probabilities."""

    def __init__(self, embed: FrozenEmbedder, model: Pipeline | OneVsRestClassifier, multilabel: bool) -> None:
        self.embedder, self.model, self.multilabel = embed, model, multilabel

    @property
    def n_params(self) -> int:
        """Coefficients and intercepts of the fitted logistic regression(s) (the encoder is frozen, not counted; a
        label with one class in training gets scikit-learn's constant predictor, which has none)."""
        steps = self.model.estimators_ if isinstance(self.model, OneVsRestClassifier) else [self.model]
        return sum(int(s[-1].coef_.size + s[-1].intercept_.size) for s in steps if isinstance(s, Pipeline))

    def score(self, dataset: Dataset) -> np.ndarray:
        proba = self.model.predict_proba(self.embedder.features(dataset))
        return proba if self.multilabel else proba[:, 1]


def fit_sklearn(
    train: Dataset,
    val: Dataset,
    io: IOSpec,
    *,
    checkpoint: str,
    pooling: str,
    max_length: int,
    embed_batch_size: int,
    device: str,
    C: float,
    class_weight: str,
    max_iter: int,
    embed_amp: str,
) -> ProbeLogReg:
    """Fit on the train embeddings (`val` unused: no early stopping; C is chosen by the tuner)."""
    if class_weight not in ("none", "balanced"):
        raise ValueError(f"dnabert2_probe_sklearn: class_weight={class_weight!r} must be none or balanced")
    embed = embedder(checkpoint=checkpoint, pooling=pooling, max_length=max_length,
                     embed_batch_size=embed_batch_size, device=device, embed_amp=embed_amp)  # fmt: skip
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(
        C=C, max_iter=max_iter, class_weight=None if class_weight == "none" else "balanced"))  # fmt: skip
    multilabel = io.target == "multilabel"
    model = OneVsRestClassifier(pipeline) if multilabel else pipeline
    model.fit(embed.features(train), train.labels.astype(np.int64))
    return ProbeLogReg(embed, model, multilabel)


def save_state(predictor: ProbeLogReg) -> dict[str, Any]:
    """The fitted logistic regression and the checkpoint's resolved path and digest (not its weights)."""
    spec = predictor.embedder.spec
    return {"model": predictor.model, "checkpoint": np.asarray(spec.checkpoint), "digest": np.asarray(spec.digest)}


def load_state(state: Mapping[str, Any], io: IOSpec, hp: Mapping[str, Any]) -> ProbeLogReg:
    """The probe with its embedder on the recorded checkpoint (checked against its digest when first used)."""
    spec = EmbedSettings(str(state["checkpoint"]), str(state["digest"]), hp["pooling"], int(hp["max_length"]),
                         int(hp["embed_batch_size"]), hp["device"], hp["embed_amp"])  # fmt: skip
    return ProbeLogReg(FrozenEmbedder(spec), state["model"], io.target == "multilabel")


def search_space(trial: Any) -> dict[str, Any]:
    return {"dropout": trial.suggest_float("dropout", 0.0, 0.5)}


def search_space_sklearn(trial: Any) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("C", 1e-4, 1e2, log=True),
        "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="dnabert2_probe",
        description="frozen DNABERT-2 (or any local BERT-like DNA LM) mean-pooled embeddings + linear head",
        native_inputs="seq_pair",
        defaults=Settings({**EMBEDDING_DEFAULTS, "dropout": Setting(0.0, ge=0, lt=1)}),
        tiny=EMBEDDING_TINY,
        search_space=search_space,
        build=build,
        featurize=featurize,
        check=lambda hp: resolve_checkpoint(hp["checkpoint"]),
        paper=PAPER,
    )
)

PLUGIN_SKLEARN = register_model(
    ModelPlugin(
        name="dnabert2_probe_sklearn",
        description="frozen DNABERT-2 (or any local BERT-like DNA LM) embeddings + sklearn logistic regression",
        native_inputs="seq_pair",
        defaults=Settings(
            {
                **EMBEDDING_DEFAULTS,
                "C": Setting(1.0, gt=0),
                "class_weight": Setting("none", choices=("none", "balanced")),
                "max_iter": Setting(2000, ge=1),
            }
        ),
        tiny={**EMBEDDING_TINY, "max_iter": 500},
        search_space=search_space_sklearn,
        fit_sklearn=fit_sklearn,
        save_state=save_state,
        load_state=load_state,
        featurize=featurize,
        check=lambda hp: resolve_checkpoint(hp["checkpoint"]),
        paper=PAPER,
    )
)
