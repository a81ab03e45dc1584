"""Basset: Kelley, Snoek & Rinn 2016, "Basset: learning the regulatory code of the accessible genome with deep
convolutional neural networks", Genome Research 26:990–999.

The published architecture (as in the Torch model converted by kipoi/models `Basset`): three convolution layers
(300 × 19, 200 × 11, 200 × 7; no padding), each followed by batch norm, ReLU and max-pooling (3, 4, 4), then two
fully connected layers of 1000 units with batch norm, ReLU and dropout 0.3. The harness adds the output layer
(1000 → n_outputs; sigmoid through BCE-with-logits). At 600 bp the flattened convolution output is 200 × 10 = 2000.

codes (B, L) → one-hot (B, 4, L) → 3 × [conv, BN, ReLU, max-pool] (B, F3, L3) → flatten (B, F3·L3)
→ 2 × [linear, BN, ReLU, dropout] (B, fc_dim). The flatten size is computed from the task's fixed length; shorter
inputs (the shorter branch of a pair under the siamese adapter) are right-padded with N (all-zero columns).
Input length: exactly the task's fixed length (variable-length tasks are refused at build); longer inputs are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import Setting, Settings
from harness.data.encode import one_hot
from harness.plugins import register_model
from harness.spec import Encoder, IOSpec, ModelPlugin


def conv_stack_length(name: str, length: int, layers: list[tuple[int, int]]) -> int:
    """Length after unpadded convolutions of width w and max-pools of size p, `layers = [(w, p)]`; raises if < 1."""
    if length == 0:
        raise ValueError(f"{name} needs a fixed input length (it flattens its convolution output); io.lengths has 0")
    out = length
    for width, pool in layers:
        out = (out - width + 1) // pool
        if out < 1:
            raise ValueError(
                f"{name}: input length {length} is too short for convolution widths / pools {layers} "
                "(the stack shrinks below 1 position)"
            )
    return out


def pad_to(codes: torch.Tensor, mask: torch.Tensor, length: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad `codes (B, L')`, `mask (B, L')` to `length` with masked positions; raise if `L' > length`."""
    extra = length - codes.shape[1]
    if extra < 0:
        raise ValueError(f"{name}: input length {codes.shape[1]} exceeds the model's fixed length {length}")
    return F.pad(codes, (0, extra), value=4), F.pad(mask, (0, extra), value=False)


class Basset(nn.Module, Encoder):
    """`forward(codes (B, L), mask (B, L)) -> features (B, fc_dim)` for a fixed length L."""

    def __init__(self, length: int, filters: tuple[int, int, int], widths: tuple[int, int, int],
                 pools: tuple[int, int, int], fc_dim: int, dropout: float) -> None:  # fmt: skip
        super().__init__()
        self.length = length
        flat_length = conv_stack_length("basset", length, list(zip(widths, pools, strict=True)))
        layers: list[nn.Module] = []
        for c_in, c_out, width, pool in zip((4, *filters[:2]), filters, widths, pools, strict=True):
            layers += [nn.Conv1d(c_in, c_out, width), nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(pool)]
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(filters[2] * flat_length, fc_dim), nn.BatchNorm1d(fc_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(fc_dim, fc_dim), nn.BatchNorm1d(fc_dim), nn.ReLU(), nn.Dropout(dropout),
        )  # fmt: skip
        self.out_dim = fc_dim

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        codes, mask = pad_to(codes, mask, self.length, "basset")
        x = self.convs(one_hot(codes, mask))  # (B, 4, L) → (B, F3, L3)
        return self.fc(x.flatten(1))  # (B, F3·L3) → (B, fc_dim)


def build(
    io: IOSpec,
    *,
    filters1: int,
    width1: int,
    pool1: int,
    filters2: int,
    width2: int,
    pool2: int,
    filters3: int,
    width3: int,
    pool3: int,
    fc_dim: int,
    dropout: float,
) -> Basset:
    return Basset(io.lengths[0], (filters1, filters2, filters3), (width1, width2, width3), (pool1, pool2, pool3),
                  fc_dim, dropout)  # fmt: skip


def fixed_length(hp: Mapping[str, Any], io: IOSpec) -> int:
    """A flattening CNN takes the task's fixed length and nothing longer."""
    return io.lengths[0]


def search_space(trial: Any) -> dict[str, Any]:
    """Layer sizes and dropout; the convolution widths and pools stay the paper's (they fix the flatten size)."""
    return {
        "filters1": trial.suggest_categorical("filters1", [100, 200, 300]),
        "filters2": trial.suggest_categorical("filters2", [100, 200]),
        "filters3": trial.suggest_categorical("filters3", [100, 200]),
        "fc_dim": trial.suggest_categorical("fc_dim", [250, 500, 1000]),
        "dropout": trial.suggest_float("dropout", 0.1, 0.5),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="basset",
        description="Basset CNN: 3 conv (300×19, 200×11, 200×7) + BN + max-pool, 2 × FC 1000 (fixed length)",
        native_inputs="seq",
        defaults=Settings(
            {
                "filters1": Setting(300, ge=1, le=4096),
                "width1": Setting(19, ge=1, le=1000),
                "pool1": Setting(3, ge=1, le=1000),
                "filters2": Setting(200, ge=1, le=4096),
                "width2": Setting(11, ge=1, le=1000),
                "pool2": Setting(4, ge=1, le=1000),
                "filters3": Setting(200, ge=1, le=4096),
                "width3": Setting(7, ge=1, le=1000),
                "pool3": Setting(4, ge=1, le=1000),
                "fc_dim": Setting(1000, ge=1, le=65536),
                "dropout": Setting(0.3, ge=0, lt=1),
            }
        ),
        tiny={"filters1": 8, "filters2": 8, "filters3": 8, "fc_dim": 16},
        search_space=search_space,
        build=build,
        max_length=fixed_length,
        paper="Kelley, Snoek & Rinn 2016, Genome Research 26:990 (Basset)",
    )
)
