"""The optimiser step alone: ms per AdamW step as torch builds it by default on the CPU (a loop over parameter
tensors) and fused (`harness.training.fit.adamw`, what `fit` trains with), for basset and kmer_attention with their
default settings, on one thread, in one run (median of `--steps` steps after 3 untimed ones, random gradients).

    .venv/bin/python -m bench.optimizer [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.fit import adamw
from harness.training.modeling import build_model

SHAPES = {"basset": (600, 164), "kmer_attention": (200, 1)}  # (length bp, outputs), as bench/cpu_speed.py


def step_ms(optimizer: torch.optim.Optimizer, steps: int) -> float:
    for _ in range(3):
        optimizer.step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'model':<16}{'parameters':>12}{'default ms':>12}{'fused ms':>10}{'×':>7}")
    for name, (length, outputs) in SHAPES.items():
        plugin = get_model(name)
        io = IOSpec("seq", (length,), outputs, "multilabel" if outputs > 1 else "binary")
        model = build_model(plugin, io, dict(plugin.defaults))
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        default = step_ms(torch.optim.AdamW(model.parameters(), lr=1e-3), args.steps)
        fused = step_ms(adamw(model.parameters(), lr=1e-3, weight_decay=0.01), args.steps)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:<16}{n:>12,}{default:>12.1f}{fused:>10.1f}{default / fused:>6.1f}×")


if __name__ == "__main__":
    main()
