"""The convolution + BiLSTM trunk shared by SPEID and EPSAT (EPSAT = SPEID's trunk + self-attention).

Singh et al. 2019, "Predicting enhancer-promoter interaction from genomic sequence with deep neural networks",
Quantitative Biology 7:122; branch configuration (200 kernels of 13, max-pool 6, 2-layer BiLSTM of 100) as in EPSAT.

per branch: codes (B, L) → one-hot (B, 4, L) → Conv1d, valid (B, C, L-k+1) → BatchNorm over real positions → ReLU
→ MaxPool(p) (B, C, T) → Dropout.
trunk: branch outputs concatenated along the sequence axis (enhancer steps, then promoter steps) → 2-layer BiLSTM
→ (B, T_e + T_p, 2H) plus a mask of real steps.

Padding: a pooled step is real when every base under its pooling window's convolutions is real. Before the LSTM the
real steps of all branches are moved to the front of each row (in order) and the LSTM reads them through
`pack_padded_sequence`, so it never sees padding and a sequence's features do not depend on the batch's padding
width. Batch norm takes its statistics over real positions only.
Input length: any; memory grows linearly with it (the convolution output, B x n_kernels x L floats, is checked
against the memory limit before allocation, `harness.data.encode.check_batch_memory`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness.config import Setting
from harness.data.encode import check_batch_memory, one_hot

# The trunk's paper configuration (SPEID as described for EPSAT) and ranges, shared by speid's and epsat's defaults.
TRUNK_SETTINGS = {
    "n_kernels": Setting(200, ge=1, le=4096),
    "kernel_size": Setting(13, ge=1, le=1000),
    "pool": Setting(6, ge=1, le=1000),
    "conv_dropout": Setting(0.2, ge=0, lt=1),
    "hidden": Setting(100, ge=1, le=4096),
    "lstm_layers": Setting(2, ge=1, le=8),
    "dropout": Setting(0.4, ge=0, lt=1),
}


class ConvBranch(nn.Module):
    """`forward(codes (B, L), mask (B, L)) -> (h (B, T, C), real (B, T))` with T = (L - kernel_size + 1) // pool."""

    def __init__(self, n_kernels: int, kernel_size: int, pool: int, dropout: float) -> None:
        super().__init__()
        self.kernel_size, self.pool = kernel_size, pool
        self.conv = nn.Conv1d(4, n_kernels, kernel_size, bias=False)  # the batch norm's shift is the bias
        self.bn = nn.BatchNorm1d(n_kernels)
        self.pooling = nn.MaxPool1d(pool)
        self.drop = nn.Dropout(dropout)

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        min_len = self.kernel_size + self.pool - 1
        shortest = int(mask.sum(dim=1).min())
        if shortest < min_len:
            raise ValueError(
                f"a sequence of length {shortest} is shorter than kernel_size + pool - 1 = {min_len}; "
                "lower kernel_size or pool"
            )
        check_batch_memory(4 * codes.shape[0] * self.conv.out_channels * codes.shape[1], "convolution output")
        x = self.conv(one_hot(codes, mask))  # (B, C, L') with L' = L - k + 1
        n_real = mask.sum(dim=1) - self.kernel_size + 1  # (B,) windows lying wholly on real bases
        valid = torch.arange(x.shape[-1], device=x.device)[None, :] < n_real[:, None]  # (B, L')
        h = x.transpose(1, 2)  # (B, L', C)
        normed = torch.zeros_like(h)
        normed[valid] = self.bn(h[valid])  # statistics over real positions only
        h = torch.relu(normed).transpose(1, 2)  # (B, C, L'); padding positions are 0
        h = self.drop(self.pooling(h)).transpose(1, 2)  # (B, T, C)
        real = torch.arange(h.shape[1], device=h.device)[None, :] < (n_real // self.pool)[:, None]  # (B, T)
        return h, real


class ConvLstmTrunk(nn.Module):
    """`forward(codes_1, mask_1[, codes_2, mask_2]) -> (h (B, T, 2H), real (B, T))`; one conv branch per input.

    Rows of `h` hold each example's real steps first; positions where `real` is False are zeros.
    """

    def __init__(
        self, n_branches: int, n_kernels: int, kernel_size: int, pool: int, conv_dropout: float, hidden: int,
        lstm_layers: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.branches = nn.ModuleList(ConvBranch(n_kernels, kernel_size, pool, conv_dropout) for _ in range(n_branches))
        self.lstm = nn.LSTM(n_kernels, hidden, num_layers=lstm_layers, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(inputs) != 2 * len(self.branches):
            raise ValueError(f"expected codes and mask for {len(self.branches)} branch(es), got {len(inputs)} tensors")
        parts = [branch(inputs[2 * i], inputs[2 * i + 1]) for i, branch in enumerate(self.branches)]
        h = torch.cat([p[0] for p in parts], dim=1)  # (B, T, C), T = T_e + T_p
        real = torch.cat([p[1] for p in parts], dim=1)  # (B, T)
        order = torch.argsort((~real).to(torch.uint8), dim=1, stable=True)  # real steps first, in sequence order
        h = h.gather(1, order[:, :, None].expand_as(h))  # (B, T, C)
        lengths = real.sum(dim=1)  # (B,)
        packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])  # (B, T, 2H)
        return out, torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]
