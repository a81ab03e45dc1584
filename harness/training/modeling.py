"""From a model plugin and a task's IOSpec to a classifier: adapters and the output head live here.

- native "seq" model on a "seq" task, or native pair model on a pair task: encoder → linear head.
- native "seq" model on a pair task: one shared (siamese) encoder over both sequences, pooled features
  concatenated → linear head.
- native pair model on a "seq" task: the plugin builds one branch (it sees `io.n_branches == 1`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from harness.plugin_sources import PluginError
from harness.spec import Encoder, IOSpec, ModelPlugin


class SequenceClassifier(nn.Module):
    """`forward(*inputs) -> logits (B, n_outputs)`; inputs as in `harness.spec.Batch`."""

    def __init__(self, encoder: Encoder, io: IOSpec, siamese: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.siamese = siamese
        width = encoder.out_dim * (2 if siamese else 1)
        self.head = nn.Linear(width, io.n_outputs)

    def features(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Pooled features `(B, D)` (or `(B, 2D)` through the siamese adapter)."""
        if self.siamese:
            x1, m1, x2, m2 = inputs
            return torch.cat([self.encoder(x1, m1), self.encoder(x2, m2)], dim=-1)
        return self.encoder(*inputs)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(*inputs))

    def aux_loss(self) -> torch.Tensor | None:
        """An extra training loss the encoder computed in its last forward (e.g. EPLAE's reconstruction)."""
        return self.encoder.aux_loss


class IncompatibleError(ValueError):
    """A model cannot run on a task (or a prerequisite is missing); the message says why."""


def check_compatible(plugin: ModelPlugin, io: IOSpec, hp: Mapping[str, Any], task_name: str) -> None:
    """Raise IncompatibleError when `plugin` cannot run on a task with `io`, before any data is loaded.

    Sequence models (native "seq" / "seq_pair") run on every sequence task through the adapters; feature-table
    models (native "features") run only on feature tasks, and vice versa.
    """
    if (io.inputs == "features") != (plugin.native_inputs == "features"):
        wants = "a feature table" if plugin.native_inputs == "features" else "sequences"
        has = "a feature table" if io.inputs == "features" else "sequences"
        raise IncompatibleError(f"model {plugin.name} needs {wants}, but task {task_name} provides {has}")
    reason = plugin.check_io(io) if plugin.check_io is not None else None
    if reason:
        raise IncompatibleError(f"model {plugin.name} cannot run on task {task_name}: {reason}")
    if plugin.check is not None:
        try:
            plugin.check(hp)
        except (ValueError, FileNotFoundError) as err:
            raise IncompatibleError(f"model {plugin.name} cannot run: {err}") from None


def build_model(plugin: ModelPlugin, io: IOSpec, hp: Mapping[str, Any]) -> SequenceClassifier:
    """Build the plugin's encoder for `io` (one branch or the siamese adapter) and add the head."""
    if plugin.build is None:
        raise TypeError(f"model {plugin.name!r} is not a torch model")
    siamese = io.n_branches == 2 and plugin.native_inputs == "seq"
    branch_io = IOSpec("seq", io.lengths[:1], io.n_outputs, io.target, io.label_names) if siamese else io
    encoder = plugin.build(branch_io, **hp)
    if not isinstance(encoder, Encoder) or not isinstance(encoder.out_dim, int):
        raise PluginError(
            f"model {plugin.name!r}: build() returned {type(encoder).__name__}, which does not follow "
            "harness.api.Encoder (subclass it beside nn.Module and set an integer out_dim)"
        )
    return SequenceClassifier(encoder, io, siamese)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
