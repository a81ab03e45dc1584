"""Writes plugin files as an outside author would: one module importing only `harness.api`."""

from __future__ import annotations

from pathlib import Path

MODEL = '''
"""An outside model: a one-layer CNN with global max pooling."""
import os

import torch
from torch import nn

from harness.api import Encoder, ModelPlugin, Setting, Settings, register_model


class OutsideCNN(nn.Module, Encoder):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, width, 9, padding=4)
        self.out_dim = width

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, width)
        x = nn.functional.one_hot(codes.long().clamp(max=3), 4).float() * mask[..., None]
        h = torch.relu(self.conv(x.transpose(1, 2)))
        return h.masked_fill(~mask[:, None, :], -1e4).amax(dim=2)


def build(io, *, width):
    if os.environ.get("REGBENCH_SHIPPED_PLUGINS") and "runtime_resources" not in __file__:
        raise RuntimeError(f"a Ray worker imported this plugin from {__file__}, not from what the driver shipped")
    return OutsideCNN(width)


def space(trial):
    return {"width": trial.suggest_categorical("width", [4, 8])}


register_model(ModelPlugin(name="NAME", description="outside CNN", native_inputs="seq",
                           defaults=Settings({"width": Setting(8, ge=1)}), search_space=space, build=build,
                           tiny={"width": 4}))
'''

TASK = '''
"""An outside task: random 100-bp sequences, positive when they hold GATA."""
import numpy as np

from harness.api import IOSpec, SeqDataset, Seqs, SplitTask, binary_metrics, register_task


def _split(n, seed):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), 100)) for _ in range(n)]
    labels = np.array([float("GATA" in s) for s in seqs], dtype=np.float32)
    return SeqDataset((Seqs.from_strings(seqs),), labels, np.array([f"s{seed}_{i}" for i in range(n)]))


def factory(**options):
    return SplitTask(name="NAME", io=IOSpec("seq", (100,), 1, "binary"), primary_metric="auroc",
                     split_protocol="seeded_draws", synthetic=True, metric_fn=binary_metrics,
                     load=lambda: {"train": _split(200, 0), "val": _split(60, 1), "test": _split(60, 2)})


register_task("NAME", factory, "outside GATA task")
'''


def write_task(folder: Path, name: str) -> Path:
    """`folder/gata_task.py` registering task `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gata_task.py"
    path.write_text(TASK.replace('"NAME"', repr(name)))
    return path


def write_model(folder: Path, name: str, file: str = "", replace: dict[str, str] | None = None) -> Path:
    """`folder/FILE.py` (default: the model's name) registering model `name`; `replace` edits the source first."""
    source = MODEL.replace('"NAME"', repr(name))
    for old, new in (replace or {}).items():
        assert old in source, old
        source = source.replace(old, new)
    path = folder / f"{file or name}.py"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path
