"""Fine-tuning a DNA language model (DNABERT-2, Zhou et al. 2023; Nucleotide Transformer v2, Dalla-Torre et al.
2024; any BERT-like Hugging Face checkpoint) with the harness's linear head, through the normal training loop.

- Encoder: the checkpoint's base model (`models.lm._checkpoint.load_backbone`), trained in full (`method=full`)
  or through LoRA adapters (`method=lora`, Hu et al. 2022, the `peft` library): rank `lora_rank`, scale
  `lora_alpha / lora_rank`, dropout `lora_dropout` on the attention projections (DNABERT-2 `Wqkv`, NT/BERT
  `query`/`key`/`value`); everything else in the encoder is frozen. The head is always trained.
- Tokens and pooling as for the probe (`models.lm._embeddings.TokenWindows`): each sequence is tokenized in the
  forward pass, cut into windows of at most `max_length` tokens (its special tokens kept around every window), all
  windows run through the encoder, and the sequence's vector is the real-token-weighted mean of its windows'
  `mean` or `cls` vectors → `(B, D)`, then dropout. Pair tasks (EPI) go through the harness's siamese adapter
  (one shared encoder, vectors concatenated).
- `gradient_checkpointing`: each transformer layer recomputes its activations in the backward pass
  (`torch.utils.checkpoint`, non-reentrant), set up here for both architectures (neither remote code offers it).
- `layer_decay` (Clark et al. 2020, ELECTRA; 1.0 = off): layer i of n trains at `lr · layer_decay^(n - i)`, the
  embeddings at `lr · layer_decay^(n + 1)`, the head at `lr` (optimiser groups through `Encoder.param_groups`).
- Studies search the learning rate in fine-tuning's own range (`train_space`: 1e-5 to 3e-4), not the shared one.
- Logged with the run: `encoder_trainable_params`, `encoder_frozen_params`.
- Precision: `train.amp` (`harness.training.precision`): by default bf16 autocast on CUDA and fp32 on CPU;
  `train.amp=true` adds bf16 autocast on a CPU with bf16 units.
- Logged model: the classifier's whole state dict (safetensors, `harness.tracking.logged_model`), loaded into the
  model `build` makes from the run's settings, so the checkpoint folder (code, config, tokenizer) must still be at
  `model.checkpoint` (or `$REGBENCH_DNABERT2`). Pickled in-process (e.g. by Ray), the encoder travels as
  (settings, checkpoint digest, state dict) and is rebuilt without reading the folder's weights.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from harness.config import ConfigError, Setting, Settings
from harness.data.encode import decode
from harness.plugins import register_model
from harness.spec import Encoder, IOSpec, ModelPlugin
from models.lm._checkpoint import Backbone, load_backbone
from models.lm._embeddings import (
    POOLINGS,
    TokenWindows,
    check_pooling,
    checkpoint_digest,
    max_tokens,
    resolve_checkpoint,
)

PAPER = ("Zhou et al. 2023, DNABERT-2 (arXiv:2306.15006); Dalla-Torre et al. 2024, Nucleotide Transformer "
         "(Nature Methods); LoRA: Hu et al. 2022 (ICLR)")  # fmt: skip
METHODS = ("full", "lora")
LORA_TARGETS = ("Wqkv", "query", "key", "value")  # attention projections: DNABERT-2, then NT-v2 / BERT
DEFAULTS = Settings(
    {
        "checkpoint": Setting("", accepts="a checkpoint folder (empty: $REGBENCH_DNABERT2)"),
        "method": Setting("lora", choices=METHODS),
        "pooling": Setting("mean", choices=POOLINGS),
        "max_length": Setting(512, ge=3, le=100_000),
        "lora_rank": Setting(8, ge=1, le=4096),
        "lora_alpha": Setting(16.0, gt=0),
        "lora_dropout": Setting(0.1, ge=0, lt=1),
        "dropout": Setting(0.1, ge=0, lt=1),
        "gradient_checkpointing": Setting(False),
        "layer_decay": Setting(1.0, gt=0, le=1),  # 1 = no decay
    }
)

TRAIN_DEFAULTS = {"lr": 1e-4, "batch_size": 16, "eval_batch_size": 64, "warmup_frac": 0.1, "max_epochs": 5,
                  "patience": 2, "length_buckets": True}  # fmt: skip


@dataclass(frozen=True)
class FineTuneSettings:
    """What defines the fine-tuned encoder's architecture (its weights travel separately)."""

    checkpoint: str
    method: str
    pooling: str
    max_length: int
    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    dropout: float
    gradient_checkpointing: bool
    layer_decay: float

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"model.method={self.method!r} is not one of {', '.join(METHODS)}")
        check_pooling(self.pooling)
        if self.max_length < 3:
            raise ConfigError(f"model.max_length={self.max_length} must be >= 3")
        if self.lora_rank < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1 or not 0 <= self.dropout < 1:
            raise ConfigError(f"model.lora_rank={self.lora_rank} must be >= 1, lora_alpha={self.lora_alpha} > 0, "
                              f"lora_dropout={self.lora_dropout} and dropout={self.dropout} in [0, 1)")  # fmt: skip
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"model.layer_decay={self.layer_decay} must be in (0, 1] (1 = no decay)")


def _add_lora(model: nn.Module, settings: FineTuneSettings) -> None:
    """LoRA adapters on the attention projections (in place); every non-LoRA encoder parameter frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    present = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    targets = [t for t in LORA_TARGETS if t in present]
    if not targets:
        raise ConfigError(f"model.method=lora: the encoder has none of the attention projections {LORA_TARGETS}")
    config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=targets, bias="none")  # fmt: skip
    inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)


def _checkpointed(forward: Any, *args: Any, **kwargs: Any) -> Any:
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def _layer_stack(model: nn.Module) -> nn.ModuleList | None:
    """The encoder's stack of transformer layers (`encoder.layer` in both architectures), or None."""
    stacks = [m for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and name.endswith("layer")]
    return stacks[0] if stacks else None


def _enable_gradient_checkpointing(model: nn.Module) -> None:
    """Wrap the forward of every layer of the encoder's layer stack (`encoder.layer`) in activation checkpointing."""
    stack = _layer_stack(model)
    if stack is None:
        raise ConfigError("model.gradient_checkpointing=true: no transformer layer stack (`encoder.layer`) found")
    for layer in stack:
        layer.forward = functools.partial(_checkpointed, layer.forward)


def _rebuild(settings: FineTuneSettings, digest: str, state: dict[str, torch.Tensor]) -> LMEncoder:
    """Unpickling: the architecture from the (unchanged) checkpoint folder, no weights read, then the saved weights."""
    found = checkpoint_digest(Path(settings.checkpoint))
    if found != digest:
        raise ConfigError(f"checkpoint {settings.checkpoint} changed since this model was trained (digest {found}, "
                          f"expected {digest}); restore it or retrain")  # fmt: skip
    encoder = LMEncoder(settings, weights=False)
    encoder.load_state_dict(state, assign=True)
    return encoder


class LMEncoder(nn.Module, Encoder):
    """`forward(codes (B, L), mask (B, L)) -> (B, D)`: tokenize, window, encode, pool (see the module docstring)."""

    def __init__(self, settings: FineTuneSettings, weights: bool = True) -> None:
        super().__init__()
        self.settings = settings
        self.digest = checkpoint_digest(Path(settings.checkpoint))
        backbone: Backbone = load_backbone(Path(settings.checkpoint), meta=not weights)
        self.backbone = backbone.encoder
        if settings.method == "lora":
            _add_lora(self.backbone, settings)
        if settings.gradient_checkpointing:
            _enable_gradient_checkpointing(self.backbone)
        self.tokens = TokenWindows(backbone.tokenizer, max_tokens(settings.max_length, self.backbone,
                                                                  backbone.tokenizer), settings.pooling)  # fmt: skip
        self.dropout = nn.Dropout(settings.dropout)
        self.out_dim = int(self.backbone.config.hidden_size)

    def __reduce__(self) -> tuple[Any, tuple[FineTuneSettings, str, dict[str, torch.Tensor]]]:
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return _rebuild, (self.settings, self.digest, state)

    def param_counts(self) -> dict[str, int]:
        """Encoder parameters that train and that stay frozen."""
        trainable = sum(p.numel() for p in self.backbone.parameters() if p.requires_grad)
        return {"trainable": trainable, "frozen": sum(p.numel() for p in self.backbone.parameters()) - trainable}

    def run_metrics(self) -> dict[str, float]:
        return {f"encoder_{kind}_params": float(n) for kind, n in self.param_counts().items()}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Layer-wise learning-rate decay: layer i of n at `lr · decay^(n - i)`, the rest of the encoder (embeddings)
        at `lr · decay^(n + 1)`; `[]` when `layer_decay` is 1."""
        decay, stack = self.settings.layer_decay, _layer_stack(self.backbone)
        if decay == 1.0 or stack is None:
            return []
        n = len(stack)
        groups = [{"params": [p for p in layer.parameters() if p.requires_grad], "lr": lr * decay ** (n - i)}
                  for i, layer in enumerate(stack)]  # fmt: skip
        in_layers = {id(p) for layer in stack for p in layer.parameters()}
        rest = [p for p in self.backbone.parameters() if p.requires_grad and id(p) not in in_layers]
        return [*groups, {"params": rest, "lr": lr * decay ** (n + 1)}]

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).cpu().numpy()
        seqs = [decode(c, int(n)) for c, n in zip(codes.cpu().numpy().astype(np.uint8), lengths, strict=True)]
        win = self.tokens.windows(seqs)
        ids, attention, real = self.tokens.batch(win, range(len(win.ids)))  # (W, T) each
        device = codes.device
        # return_dict given for the reason in `_embeddings.Encoder._hidden` (no use_return_dict deprecation notice)
        out = self.backbone(input_ids=ids.to(device), attention_mask=attention.to(device), return_dict=True)
        hidden = out[0].float()  # (W, T, D): a ModelOutput's or DNABERT-2's tuple's first item; pooled in fp32
        weighted, n_real = self.tokens.pool(hidden, real.to(device))  # (W, D), (W,)
        owner = torch.from_numpy(win.owner).to(device)
        total = torch.zeros(len(seqs), hidden.shape[-1], dtype=weighted.dtype, device=device).index_add(
            0, owner, weighted
        )
        counts = torch.zeros(len(seqs), dtype=n_real.dtype, device=device).index_add(0, owner, n_real)
        return self.dropout(total / counts[:, None])  # (B, D)


def build(
    io: IOSpec,
    *,
    checkpoint: str,
    method: str,
    pooling: str,
    max_length: int,
    lora_rank: int,
    lora_alpha: float,
    lora_dropout: float,
    dropout: float,
    gradient_checkpointing: bool,
    layer_decay: float,
) -> LMEncoder:
    """The encoder of one sequence branch with the checkpoint's weights (`io` unused: any length, any task)."""
    folder = resolve_checkpoint(checkpoint)
    settings = FineTuneSettings(str(folder), method, pooling, max_length, lora_rank, lora_alpha, lora_dropout,
                                dropout, gradient_checkpointing, layer_decay)  # fmt: skip
    return LMEncoder(settings)


def search_space(trial: Any) -> dict[str, Any]:
    """LoRA rank, alpha and dropout, pooling and head dropout (the learning rate is in the shared `train.*` space)."""
    return {
        "lora_rank": trial.suggest_categorical("lora_rank", [4, 8, 16, 32]),
        "lora_alpha": trial.suggest_categorical("lora_alpha", [8.0, 16.0, 32.0]),
        "lora_dropout": trial.suggest_float("lora_dropout", 0.0, 0.3),
        "pooling": trial.suggest_categorical("pooling", ["mean", "cls"]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
    }


def train_space(trial: Any) -> dict[str, Any]:
    """Fine-tuning's training settings: learning rates a pretrained encoder tolerates, small batches."""
    return {
        "lr": trial.suggest_float("lr", 1e-5, 3e-4, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32]),
    }


def _check(hp: Mapping[str, Any]) -> None:
    resolve_checkpoint(hp["checkpoint"])
    FineTuneSettings(**{k: hp[k] for k in DEFAULTS})


PLUGIN = register_model(
    ModelPlugin(
        name="lm_finetune",
        description="DNA language model (DNABERT-2, NT-v2, any local BERT-like) fine-tuned, full or LoRA, + head",
        native_inputs="seq",
        defaults=DEFAULTS,
        tiny={"max_length": 64, "lora_rank": 4},
        search_space=search_space,
        build=build,
        check=_check,
        train_defaults=TRAIN_DEFAULTS,
        train_space=train_space,
        paper=PAPER,
    )
)
