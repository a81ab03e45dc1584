"""SPEID: enhancer–promoter interaction from sequence alone.

Singh, Yang, Peng & Ma 2019, "Predicting enhancer-promoter interaction from genomic sequence with deep neural
networks", Quantitative Biology 7:122-137. Trunk configuration as in the EPSAT re-implementation: per branch 200
kernels of length 13 → batch norm → ReLU → max-pool 6 → dropout 0.2; 2-layer BiLSTM of 100 per direction.

(codes, mask) per branch → ConvLstmTrunk (B, T, 2H) → dropout 0.4 → masked max over steps (B, 2H)
→ Linear-ReLU-Dropout (B, dense) → the harness's linear head.

Difference from the paper: SPEID flattens the BiLSTM output (T × 2H) into its dense layer, which ties the model to one
input length and holds ~99% of its parameters; here the steps are max-pooled (over real steps only), so the model
takes any length (memory grows linearly with it; checked per batch, see `models._pair_trunk`) and a sequence's
prediction does not depend on its batch's padding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.config import Setting, Settings
from harness.plugins import register_model
from harness.spec import Encoder, IOSpec, ModelPlugin
from models._pair_trunk import TRUNK_SETTINGS, ConvLstmTrunk


class SpeidEncoder(nn.Module, Encoder):
    """`forward(codes_e, mask_e, codes_p, mask_p) -> (B, out_dim)` (one `codes, mask` pair on single-sequence tasks)."""

    def __init__(self, trunk: ConvLstmTrunk, dropout: float, dense: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.drop = nn.Dropout(dropout)
        self.dense = nn.Sequential(nn.Linear(trunk.out_dim, dense), nn.ReLU(), nn.Dropout(dropout))
        self.out_dim = dense

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        h, real = self.trunk(*inputs)  # (B, T, 2H), (B, T)
        h = self.drop(h).masked_fill(~real[:, :, None], float("-inf"))
        return self.dense(h.amax(dim=1))  # (B, dense)


def build(
    io: IOSpec,
    *,
    n_kernels: int,
    kernel_size: int,
    pool: int,
    conv_dropout: float,
    hidden: int,
    lstm_layers: int,
    dropout: float,
    dense: int,
) -> SpeidEncoder:
    """One conv branch per input sequence of `io` (two on pair tasks, one otherwise); any lengths."""
    trunk = ConvLstmTrunk(io.n_branches, n_kernels, kernel_size, pool, conv_dropout, hidden, lstm_layers)
    return SpeidEncoder(trunk, dropout, dense)


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "n_kernels": trial.suggest_categorical("n_kernels", [64, 128, 200, 256]),
        "kernel_size": trial.suggest_int("kernel_size", 8, 40),
        "pool": trial.suggest_int("pool", 4, 20),
        "conv_dropout": trial.suggest_float("conv_dropout", 0.0, 0.5),
        "hidden": trial.suggest_categorical("hidden", [32, 64, 100]),
        "lstm_layers": trial.suggest_int("lstm_layers", 1, 2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.6),
        "dense": trial.suggest_categorical("dense", [128, 256, 800]),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="speid",
        description="SPEID: conv branch per sequence, concatenated along the sequence axis, BiLSTM, dense",
        native_inputs="seq_pair",
        defaults=Settings({**TRUNK_SETTINGS, "dense": Setting(800, ge=1, le=65536)}),
        tiny={"n_kernels": 8, "kernel_size": 5, "pool": 3, "hidden": 8, "dense": 16},
        search_space=search_space,
        build=build,
        paper="Singh, Yang, Peng & Ma 2019, Quantitative Biology 7:122",
    )
)
