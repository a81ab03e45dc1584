"""DeepSEA: Zhou & Troyanskaya 2015, "Predicting effects of noncoding variants with deep learning-based sequence
model", Nature Methods 12:931–934.

The published architecture (as in the Torch model converted by kipoi/models `DeepSEA`): convolution 320 × 8 →
ReLU → max-pool 4 → dropout 0.2 → convolution 480 × 8 → ReLU → max-pool 4 → dropout 0.2 → convolution 960 × 8 →
ReLU → dropout 0.5 → fully connected 925 → ReLU. The harness adds the output layer (925 → n_outputs). At 1000 bp
the flattened convolution output is 960 × 53 = 50880. Not reproduced: the paper's L1 penalty on the output and
max-norm weight constraint (the harness trains with AdamW weight decay).

codes (B, L) → one-hot (B, 4, L) → [conv, ReLU, pool, dropout] × 2 → conv, ReLU, dropout (B, F3, L3)
→ flatten (B, F3·L3) → linear, ReLU (B, fc_dim). The flatten size is computed from the task's fixed length;
shorter inputs (the shorter branch of a pair under the siamese adapter) are right-padded with N.
Input length: exactly the task's fixed length (variable-length tasks are refused at build); longer inputs are refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.config import Setting, Settings
from harness.data.encode import one_hot
from harness.plugins import register_model
from harness.spec import Encoder, IOSpec, ModelPlugin
from models.basset import conv_stack_length, fixed_length, pad_to


class DeepSEA(nn.Module, Encoder):
    """`forward(codes (B, L), mask (B, L)) -> features (B, fc_dim)` for a fixed length L."""

    def __init__(self, length: int, filters: tuple[int, int, int], width: int, pool: int, fc_dim: int,
                 dropouts: tuple[float, float, float]) -> None:  # fmt: skip
        super().__init__()
        self.length = length
        flat_length = conv_stack_length("deepsea", length, [(width, pool), (width, pool), (width, 1)])
        self.convs = nn.Sequential(
            nn.Conv1d(4, filters[0], width), nn.ReLU(), nn.MaxPool1d(pool), nn.Dropout(dropouts[0]),
            nn.Conv1d(filters[0], filters[1], width), nn.ReLU(), nn.MaxPool1d(pool), nn.Dropout(dropouts[1]),
            nn.Conv1d(filters[1], filters[2], width), nn.ReLU(), nn.Dropout(dropouts[2]),
        )  # fmt: skip
        self.fc = nn.Sequential(nn.Linear(filters[2] * flat_length, fc_dim), nn.ReLU())
        self.out_dim = fc_dim

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        codes, mask = pad_to(codes, mask, self.length, "deepsea")
        x = self.convs(one_hot(codes, mask))  # (B, 4, L) → (B, F3, L3)
        return self.fc(x.flatten(1))  # (B, F3·L3) → (B, fc_dim)


def build(
    io: IOSpec,
    *,
    filters1: int,
    filters2: int,
    filters3: int,
    width: int,
    pool: int,
    fc_dim: int,
    dropout1: float,
    dropout2: float,
    dropout3: float,
) -> DeepSEA:
    return DeepSEA(io.lengths[0], (filters1, filters2, filters3), width, pool, fc_dim, (dropout1, dropout2, dropout3))


def search_space(trial: Any) -> dict[str, Any]:
    """Layer sizes and dropouts; width and pool stay the paper's (they fix the flatten size)."""
    return {
        "filters1": trial.suggest_categorical("filters1", [160, 320]),
        "filters2": trial.suggest_categorical("filters2", [240, 480]),
        "filters3": trial.suggest_categorical("filters3", [480, 960]),
        "fc_dim": trial.suggest_categorical("fc_dim", [256, 925]),
        "dropout3": trial.suggest_float("dropout3", 0.2, 0.5),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="deepsea",
        description="DeepSEA CNN: conv 320×8 → pool 4 → conv 480×8 → pool 4 → conv 960×8, dense 925 (fixed length)",
        native_inputs="seq",
        defaults=Settings(
            {
                "filters1": Setting(320, ge=1, le=4096),
                "filters2": Setting(480, ge=1, le=4096),
                "filters3": Setting(960, ge=1, le=4096),
                "width": Setting(8, ge=1, le=1000),
                "pool": Setting(4, ge=1, le=1000),
                "fc_dim": Setting(925, ge=1, le=65536),
                "dropout1": Setting(0.2, ge=0, lt=1),
                "dropout2": Setting(0.2, ge=0, lt=1),
                "dropout3": Setting(0.5, ge=0, lt=1),
            }
        ),
        tiny={"filters1": 8, "filters2": 8, "filters3": 8, "fc_dim": 16},
        search_space=search_space,
        build=build,
        max_length=fixed_length,
        paper="Zhou & Troyanskaya 2015, Nature Methods 12:931 (DeepSEA)",
    )
)
