"""The optimiser step alone: ms per AdamW step as torch builds it by default on the CPU (a loop over parameter
tensors) and fused (`harness.training.fit.adamw`, what `fit` trains with), for basset and kmer_attention with their
default settings and `bench.cpu_speed`'s shapes, on one thread, in one run (median of `--steps` steps after 3
untimed ones, random gradients).
Then, with `--epochs N`, what the fused update changes in training: both models fitted for N epochs on
`enhancers.synthetic` (1,200 sequences, seed 0, no early stopping) once with each optimiser, and each epoch's
training loss and validation AUROC side by side (the two differ only in floating-point rounding).

    .venv/bin/python -m bench.optimizer [--steps 20] [--epochs 4]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable
from unittest import mock

import torch

from bench.cpu_speed import SHAPES, io_for
from harness.plugins import get_model
from harness.training import fit
from harness.training.fit import adamw
from harness.training.modeling import build_model
from harness.training.run import RunRequest, load_data


def step_ms(optimizer: torch.optim.Optimizer, steps: int) -> float:
    for _ in range(3):
        optimizer.step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def default_adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """torch's AdamW built without options: on the CPU a loop over the parameter tensors."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def curves(model: str, epochs: int) -> dict[str, list[tuple[float, float]]]:
    """Per optimiser, each epoch's (training loss, validation AUROC) of `model` fitted with it, same seed and data."""
    train = {"threads": 1, "progress": False, "patience": 0, "seed": 0}
    run = RunRequest("enhancers.synthetic", model, {"train": train, "data": {"n": 1200}}, max_epochs=epochs).resolve()
    splits = load_data(run).splits
    out = {}
    for label, make in (("fused", adamw), ("default", default_adamw)):
        with mock.patch.object(fit, "adamw", make):
            history = fit.fit(run.task, run.plugin, run.hp, run.cfg, splits=splits).history
        out[label] = [(row["train_loss"], row["val_auroc"]) for row in history]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=0, help="also fit both models this long with each optimiser")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'model':<16}{'parameters':>12}{'default ms':>12}{'fused ms':>10}{'×':>7}")
    for name in SHAPES:
        plugin = get_model(name)
        model = build_model(plugin, io_for(name), dict(plugin.defaults))
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        default = step_ms(default_adamw(model.parameters(), lr=1e-3, weight_decay=0.01), args.steps)
        fused = step_ms(adamw(model.parameters(), lr=1e-3, weight_decay=0.01), args.steps)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<16}{n:>12,}{default:>12.1f}{fused:>10.1f}{default / fused:>6.1f}×")
    for name in SHAPES if args.epochs else ():
        runs = curves(name, args.epochs)
        print(f"{name}: epoch, training loss and validation AUROC, fused | default")
        for epoch, (a, b) in enumerate(zip(runs["fused"], runs["default"], strict=True), 1):
            print(f"  {epoch:>3}  {a[0]:.5f} {a[1]:.4f} | {b[0]:.5f} {b[1]:.4f}")


if __name__ == "__main__":
    main()
