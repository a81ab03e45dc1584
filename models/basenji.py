"""Basenji: Kelley et al. 2018, "Sequential regulatory activity prediction across chromosomes with convolutional
neural networks", Genome Research 28:739–750.

A minimal configuration of the published design (the building blocks of calico/basenji `blocks.py`): a convolution
stem with pooling, a short tower of pooled convolutions, then dilated residual blocks whose dilation doubles block
after block (1, 2, 4, ...), so the receptive field grows exponentially with depth; a final 1 × 1 convolution, then
global pooling over positions (the paper predicts per 128 bp bin over 131 kb; a regbench task has one label vector per
sequence, so the bins are pooled) and the harness's output head. Convolutions are pre-activation (ReLU → conv →
batch norm), as in the paper; a residual block is ReLU → dilated conv (bottleneck) → BN → ReLU → 1 × 1 conv → BN →
dropout, added to its input.

codes (B, L) → one-hot (B, 4, L) → stem conv + pool (B, F, L/2) → tower × [conv + pool] (B, F, L/2^(1+n))
→ dilated residual × n_dilated (B, F, L') → ReLU, 1 × 1 conv, dropout (B, F_final, L') → masked pooling
(B, F_final).

Padding and length: every convolution is "same"-padded and every layer zeroes the positions that are padding, so
a sequence gives the same features whatever the padding width of its batch (a pooled position is real when any base
under it is real; padding never wins a max-pool). Any length >= 1 works, fixed or variable; memory grows linearly
with it (the stem output, B x filters x L floats, is checked against the memory limit before allocation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import Setting, Settings
from harness.data.encode import check_batch_memory, one_hot
from harness.plugins import register_model
from harness.spec import Encoder, IOSpec, ModelPlugin

POOLINGS = ("mean", "max")


def masked_maxpool(x: torch.Tensor, mask: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`x (B, C, L)`, `mask (B, L)` → `(B, C, ceil(L/pool))`, its mask; padding never wins, padded outputs are 0."""
    if pool == 1:
        return x, mask
    x = F.max_pool1d(x.masked_fill(~mask[:, None], float("-inf")), pool, ceil_mode=True)
    mask = F.max_pool1d(mask[:, None].float(), pool, ceil_mode=True)[:, 0] > 0  # (B, L'): any real base under it
    return x.masked_fill(~mask[:, None], 0.0), mask


class ConvBlock(nn.Module):
    """ReLU → conv (same padding) → BN → max-pool: `(B, C_in, L), (B, L) -> (B, C_out, L/pool), (B, L/pool)`."""

    def __init__(self, c_in: int, c_out: int, width: int, pool: int, activate: bool = True) -> None:
        super().__init__()
        self.activate, self.pool = activate, pool
        self.conv = nn.Conv1d(c_in, c_out, width, padding=width // 2, bias=False)  # BN's shift is the bias
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn(self.conv(F.relu(x) if self.activate else x)) * mask[:, None]  # (B, C_out, L)
        return masked_maxpool(x, mask, self.pool)


class DilatedResidual(nn.Module):
    """x + dropout(BN(conv1x1(ReLU(BN(dilated conv(ReLU(x))))))): `(B, C, L) -> (B, C, L)`."""

    def __init__(self, channels: int, bottleneck: int, width: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(channels, bottleneck, width, dilation=dilation, padding=dilation * (width // 2),
                                 bias=False)  # fmt: skip
        self.bn1 = nn.BatchNorm1d(bottleneck)
        self.pointwise = nn.Conv1d(bottleneck, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity (as basenji's `bn_gamma="zeros"`)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None]  # (B, 1, L)
        h = self.bn1(self.dilated(F.relu(x))) * m  # (B, bottleneck, L)
        h = self.bn2(self.pointwise(F.relu(h))) * m  # (B, C, L)
        return x + self.drop(h)


class Basenji(nn.Module, Encoder):
    """`forward(codes (B, L), mask (B, L)) -> features (B, final_filters)` for any L."""

    def __init__(self, filters: int, stem_width: int, stem_pool: int, tower_blocks: int, tower_width: int,
                 tower_pool: int, dilated_blocks: int, bottleneck: int, dilated_width: int, final_filters: int,
                 dropout: float, final_dropout: float, pooling: str) -> None:  # fmt: skip
        super().__init__()
        for name, width in (("stem_width", stem_width), ("tower_width", tower_width), ("dilated_width", dilated_width)):
            if width % 2 == 0:
                raise ValueError(f"basenji: {name}={width} must be odd (same-padded convolutions)")
        if pooling not in POOLINGS:
            raise ValueError(f"basenji: pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        self.pooling, self.filters = pooling, filters
        self.stem = ConvBlock(4, filters, stem_width, stem_pool, activate=False)  # no ReLU on the one-hot input
        self.tower = nn.ModuleList(ConvBlock(filters, filters, tower_width, tower_pool) for _ in range(tower_blocks))
        self.dilated = nn.ModuleList(
            DilatedResidual(filters, bottleneck, dilated_width, 2**i, dropout) for i in range(dilated_blocks)
        )
        self.final = nn.Conv1d(filters, final_filters, 1)
        self.final_drop = nn.Dropout(final_dropout)
        self.out_dim = final_filters

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_batch_memory(4 * codes.shape[0] * self.filters * codes.shape[1], "basenji stem output")
        x, m = self.stem(one_hot(codes, mask), mask)  # (B, F, L/stem_pool)
        for block in self.tower:
            x, m = block(x, m)  # (B, F, L/pool)
        for block in self.dilated:
            x = block(x, m)  # (B, F, L')
        x = self.final_drop(F.relu(self.final(F.relu(x))))  # (B, F_final, L')
        if self.pooling == "max":
            return x.masked_fill(~m[:, None], float("-inf")).amax(dim=-1)  # (B, F_final)
        return (x * m[:, None]).sum(dim=-1) / m.sum(dim=-1, keepdim=True)  # (B, F_final)


def build(
    io: IOSpec,
    *,
    filters: int,
    stem_width: int,
    stem_pool: int,
    tower_blocks: int,
    tower_width: int,
    tower_pool: int,
    dilated_blocks: int,
    bottleneck: int,
    dilated_width: int,
    final_filters: int,
    dropout: float,
    final_dropout: float,
    pooling: str,
) -> Basenji:
    """One branch; the network is the same for every length (`io` only picks the head, outside)."""
    return Basenji(filters, stem_width, stem_pool, tower_blocks, tower_width, tower_pool, dilated_blocks, bottleneck,
                   dilated_width, final_filters, dropout, final_dropout, pooling)  # fmt: skip


def search_space(trial: Any) -> dict[str, Any]:
    """Width, depth of both towers, dropout and the global pooling; kernel widths and pools stay the defaults."""
    return {
        "filters": trial.suggest_categorical("filters", [64, 128, 288]),
        "tower_blocks": trial.suggest_int("tower_blocks", 1, 3),
        "dilated_blocks": trial.suggest_int("dilated_blocks", 2, 6),
        "dropout": trial.suggest_float("dropout", 0.1, 0.5),
        "pooling": trial.suggest_categorical("pooling", list(POOLINGS)),
    }


def _widths_odd(hp: Mapping[str, Any]) -> str | None:
    even = [k for k in ("stem_width", "tower_width", "dilated_width") if hp[k] % 2 == 0]
    return f"model.{even[0]}={hp[even[0]]} must be odd (same-padded convolutions)" if even else None


PLUGIN = register_model(
    ModelPlugin(
        name="basenji",
        description="Basenji CNN (minimal): conv stem + 2 pooled convs, 4 dilated residual blocks (1,2,4,8), pooling",
        native_inputs="seq",
        # Widths as Basenji2's stem (288 × 15, calico/basenji `params_human.json`), one tower width throughout
        # (the published tower grows to 768 over 6 blocks for 131 kb inputs), bottleneck half the width, final
        # 1 × 1 convolution twice the width; dropout 0.3 in the residual blocks, 0.05 at the end, as published.
        defaults=Settings(
            {
                "filters": Setting(288, ge=1, le=4096),
                "stem_width": Setting(15, ge=1, le=101),
                "stem_pool": Setting(2, ge=1, le=16),
                "tower_blocks": Setting(2, ge=0, le=8),
                "tower_width": Setting(5, ge=1, le=101),
                "tower_pool": Setting(2, ge=1, le=16),
                "dilated_blocks": Setting(4, ge=0, le=12),
                "bottleneck": Setting(144, ge=1, le=4096),
                "dilated_width": Setting(3, ge=1, le=101),
                "final_filters": Setting(576, ge=1, le=8192),
                "dropout": Setting(0.3, ge=0, lt=1),
                "final_dropout": Setting(0.05, ge=0, lt=1),
                "pooling": Setting("mean", choices=POOLINGS),
            },
            rules=(_widths_odd,),
        ),
        tiny={"filters": 8, "tower_blocks": 1, "dilated_blocks": 2, "bottleneck": 4, "final_filters": 16},
        search_space=search_space,
        build=build,
        paper="Kelley et al. 2018, Genome Research 28:739 (Basenji)",
    )
)
