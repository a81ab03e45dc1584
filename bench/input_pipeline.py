"""The input pipeline: batches built in the step's thread (before, `train.prefetch=0`) vs ahead in a background
thread (after, `train.prefetch=2`), in one run, one torch thread, alternating before/after `--repeats` times.

- basset (full size) on `chromatin.synthetic` in the Basset layout (600 bp, read through the memory-mapped cache;
  written to a temporary `$REGBENCH_CACHE`), `--steps` steps of batch 64;
- kmer_attention on iEnhancer-2L (`$REGBENCH_DATA`, 200 bp), `--steps` steps of batch 64.
The NT-v2 probe's embedding is not here: padding its token batches ahead in a thread measured 0.53-1.01x of inline
padding on this machine (docs/speed.md), so the embedding keeps building its batches inline.
Training rows: sequences/s and `data_wait_fraction` (time the step waited for its batch / training time), the
median over repeats. Numbers are under whatever load the machine has: the load average is printed.

    REGBENCH_DATA=... .venv/bin/python bench/input_pipeline.py [--steps 15] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

MODES = {"before": 0, "after": 2}  # train.prefetch
STEPS = 15  # training batches per measurement (`--steps`)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def train_rate(task_name: str, model: str, data: dict[str, object], prefetch: int) -> tuple[float, float]:
    """(training sequences/s, data_wait_fraction) of one epoch of `STEPS` batches of 64 (or the split, if smaller)."""
    from harness.plugins import make_task
    from harness.training.fit import fit
    from harness.training.run import RunRequest, load_data

    task = make_task(task_name, dict(data))
    train = {"prefetch": prefetch, "threads": 1, "progress": False, "batch_size": 64}
    run = RunRequest(task_name, model, {"train": train, "data": data}, max_epochs=1).resolve(task=task)
    splits = load_data(run).splits
    train, val = splits["train"], splits["val"]
    if hasattr(train, "subset"):  # in memory; the memory-mapped chromatin cache is sized by `data.n` instead
        train, val = train.subset(np.arange(min(len(train), STEPS * 64))), val.subset(np.arange(64))
    result = fit(task, run.plugin, run.hp, run.cfg, splits={"train": train, "val": val})
    return result.throughput, result.history[0]["data_wait_fraction"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    global STEPS
    STEPS = args.steps
    synthetic = {"format": "basset", "length": 600, "n": max(100, int(STEPS * 64 / 0.8) + 1)}  # 80 % train
    torch.set_num_threads(1)
    print(f"load average before: {loadavg()}; cores: {os.cpu_count()}; torch threads: 1")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["REGBENCH_CACHE"] = cache
        cases = {
            "basset / chromatin.synthetic": lambda p: train_rate("chromatin.synthetic", "basset", synthetic, p),
            "kmer_attention / ienhancer2l": lambda p: train_rate("enhancers.ienhancer2l", "kmer_attention", {}, p),
        }
        print(f"{'case':<30}{'mode':<8}{'seq/s':>9}{'data_wait':>11}{'× before':>10}")
        for name, measure in cases.items():
            measure(MODES["after"])  # warm-up: data written and cached, kernels, allocator
            got: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
            for _ in range(args.repeats):
                for mode, prefetch in MODES.items():
                    got[mode].append(measure(prefetch))
            base = statistics.median(r for r, _ in got["before"])
            for mode in MODES:
                rate = statistics.median(r for r, _ in got[mode])
                wait = statistics.median(w for _, w in got[mode])
                print(f"{name:<30}{mode:<8}{rate:>9.1f}{wait:>11.3f}{rate / base:>9.2f}×", flush=True)
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
