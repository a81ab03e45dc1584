"""EPSAT: SPEID's convolution + BiLSTM trunk followed by multi-head self-attention.

EPSAT (enhancer–promoter interaction prediction with self-attention), built on SPEID: Singh, Yang, Peng & Ma 2019,
"Predicting enhancer-promoter interaction from genomic sequence with deep neural networks", Quantitative Biology
7:122; its attention readout follows SATORI (Ullah & Ben-Hur 2021, "A self-attention model for inferring cooperativity
between regulatory features", Nucleic Acids Research 49:e77).

(codes, mask) per branch → ConvLstmTrunk (B, T, 2H) → dropout 0.4 → 8 heads of size 32: per head
ReLU(softmax(Q Kᵀ / √32) V) (B, T, 32), concatenated (B, T, 256) → Linear-ReLU (B, T, dense)
→ mean over real steps (B, dense) → the harness's linear head.

Differences from the published model: padded keys are masked out of the attention and the readout averages over real
steps, where EPSAT sums over all steps and then standardises by the mean and standard deviation of the whole batch
(which makes a prediction depend on the other pairs in its batch); the harness head has one output, not two.

Input length: any; the attention weights grow quadratically in the pooled steps T (B x n_heads x T x T floats, checked
against the memory limit before allocation, `harness.data.encode.check_batch_memory`), the trunk linearly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import Setting, Settings
from harness.data.encode import check_batch_memory
from harness.plugins import register_model
from harness.spec import Encoder, IOSpec, ModelPlugin
from models._pair_trunk import TRUNK_SETTINGS, ConvLstmTrunk


class MultiHeadSelfAttention(nn.Module):
    """Heads of size `head_size` over `(B, T, C)` with a key padding mask; ReLU on each head's output (as SATORI).

    Runs through `F.scaled_dot_product_attention` unless `fused` is False (the explicit softmax path, same outputs
    within float tolerance). On CPU its fused kernel serves evaluation and attn_dropout 0; training with attention
    dropout runs its math path (see `models.kmer_attention.SelfAttention`; `bench/attention.py` times both).
    """

    def __init__(self, in_dim: int, n_heads: int, head_size: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.head_size = n_heads, head_size
        self.qkv = nn.Linear(in_dim, 3 * n_heads * head_size)  # = per-head Q, K, V projections, fused
        self.attn_dropout = nn.Dropout(dropout)
        self.out_dim = n_heads * head_size
        self.fused = True

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_size).permute(2, 0, 3, 1, 4)  # 3 × (B, nh, T, hs)
        check_batch_memory(4 * B * self.n_heads * T * T, "epsat attention weights")
        keys = real[:, None, None, :]  # (B, 1, 1, T); every row has at least one real step
        if self.fused:
            p = self.attn_dropout.p if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys, dropout_p=p)  # (B, nh, T, hs)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_size)  # (B, nh, T, T)
            y = self.attn_dropout(scores.masked_fill(~keys, float("-inf")).softmax(dim=-1)) @ v  # (B, nh, T, hs)
        return torch.relu(y).transpose(1, 2).reshape(B, T, self.out_dim)  # (B, T, nh·hs)


class EpsatEncoder(nn.Module, Encoder):
    """`forward(codes_e, mask_e, codes_p, mask_p) -> (B, out_dim)` (one `codes, mask` pair on single-sequence tasks)."""

    def __init__(self, trunk: ConvLstmTrunk, dropout: float, attention: MultiHeadSelfAttention, dense: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.drop = nn.Dropout(dropout)
        self.attention = attention
        self.dense = nn.Sequential(nn.Linear(attention.out_dim, dense), nn.ReLU())
        self.out_dim = dense

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        h, real = self.trunk(*inputs)  # (B, T, 2H), (B, T)
        h = self.dense(self.attention(self.drop(h), real))  # (B, T, dense)
        m = real[:, :, None].to(h.dtype)  # (B, T, 1)
        return (h * m).sum(dim=1) / m.sum(dim=1)  # (B, dense)


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
    n_heads: int,
    head_size: int,
    attn_dropout: float,
    dense: int,
) -> EpsatEncoder:
    """SPEID's trunk for `io` (two branches on pair tasks, one otherwise) plus attention; any lengths."""
    trunk = ConvLstmTrunk(io.n_branches, n_kernels, kernel_size, pool, conv_dropout, hidden, lstm_layers)
    attention = MultiHeadSelfAttention(trunk.out_dim, n_heads, head_size, attn_dropout)
    return EpsatEncoder(trunk, dropout, attention, dense)


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "n_kernels": trial.suggest_categorical("n_kernels", [64, 128, 200, 256]),
        "kernel_size": trial.suggest_int("kernel_size", 8, 24),
        "pool": trial.suggest_int("pool", 4, 12),
        "hidden": trial.suggest_categorical("hidden", [32, 64, 100]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.6),
        "n_heads": trial.suggest_categorical("n_heads", [4, 8]),
        "head_size": trial.suggest_categorical("head_size", [16, 32, 64]),
        "dense": trial.suggest_categorical("dense", [50, 100, 200]),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="epsat",
        description="EPSAT: SPEID's conv + BiLSTM trunk, then 8-head self-attention (head size 32) and a dense layer",
        native_inputs="seq_pair",
        defaults=Settings(
            {
                **TRUNK_SETTINGS,
                "n_heads": Setting(8, ge=1, le=64),
                "head_size": Setting(32, ge=1, le=1024),
                "attn_dropout": Setting(0.2, ge=0, lt=1),
                "dense": Setting(100, ge=1, le=65536),
            }
        ),
        tiny={"n_kernels": 8, "kernel_size": 5, "pool": 3, "hidden": 8, "n_heads": 2, "head_size": 4, "dense": 8},
        search_space=search_space,
        build=build,
        paper="EPSAT, on SPEID (Singh et al. 2019, Quantitative Biology 7:122) and SATORI (Ullah & Ben-Hur 2021, NAR)",
    )
)
