"""The training loss and the output link of a torch model, by target kind (`IOSpec.target`) and `train.loss`.

- binary / multilabel: BCE with logits (`train.class_weight=balanced`: positive weight n_neg / n_pos per output);
  scores are `sigmoid(output)`.
- regression: `train.loss=mse` on the raw output (scores = output), or `train.loss=poisson` for counts: Poisson
  negative log-likelihood with the output as the log rate (scores = `exp(output)`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

Link = Literal["sigmoid", "identity", "exp"]


def output_link(target: str, loss: str) -> Link:
    """How raw outputs become scores: probabilities for classifiers, predictions for regression."""
    if target != "regression":
        return "sigmoid"
    return "exp" if loss == "poisson" else "identity"


def apply_link(outputs: np.ndarray, link: Link) -> np.ndarray:
    """Scores from raw outputs `(N, C)`."""
    if link == "sigmoid":
        return 1.0 / (1.0 + np.exp(-outputs))
    if link == "exp":
        return np.exp(outputs)
    return outputs


def loss_function(target: str, loss: str, labels: np.ndarray, class_weight: str, device: torch.device) -> nn.Module:
    """The loss of one batch's `(B, C)` outputs against `(B, C)` float targets."""
    if target == "regression":
        if loss == "poisson":
            if np.asarray(labels).min() < 0:
                raise ValueError("train.loss=poisson needs non-negative targets (counts); use train.loss=mse")
            return nn.PoissonNLLLoss(log_input=True, full=False)
        return nn.MSELoss()
    return nn.BCEWithLogitsLoss(pos_weight=_pos_weight(labels, class_weight, device))


def _pos_weight(labels: np.ndarray, class_weight: str, device: torch.device) -> torch.Tensor | None:
    if class_weight == "none":
        return None
    y = np.asarray(labels).reshape(len(labels), -1)
    pos = y.sum(0)
    weight = (len(y) - pos) / np.maximum(pos, 1.0)
    return torch.tensor(weight, dtype=torch.float32, device=device)
