"""Torch intra-op threads: 1 vs 2 for the small models on this machine — the measurement behind `fit.default_threads`.

For each model, one process per thread count (alternating 1, 2, 1, 2, ... `--repeats` times, so load drift hits both
alike) trains `--steps` steps on `enhancers.synthetic` (200 bp, batch 64) after `--warmup` steps, and scores the
validation split once; it prints the median training and scoring sequences/s per thread count and their ratio.
`kmer_logreg` (sklearn) is timed as a whole fit (featurize + L-BFGS). Numbers are under whatever load the machine
has: `uptime` is printed with them.

    PYTHONPATH=. python bench/threads.py [--models kmer_attention basset:tiny basset kmer_logreg] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

MODELS = ("kmer_attention", "basset:tiny", "basset", "kmer_logreg")


def measure(model: str, threads: int, steps: int, warmup: int) -> dict[str, float]:
    """In this process: `threads` torch threads; training and scoring sequences/s (or fit seconds for sklearn)."""
    import torch

    from harness.plugins import get_model, make_task
    from harness.training.fit import fit
    from harness.training.run import RunRequest, load_data

    torch.set_num_threads(threads)
    name, _, variant = model.partition(":")
    plugin = get_model(name)
    overrides = {"model": dict(plugin.tiny) if variant == "tiny" else {}, "train": {"threads": threads}}
    task = make_task("enhancers.synthetic", {"n": 4000})
    run = RunRequest("enhancers.synthetic", name, overrides, max_epochs=1).resolve(task=task)
    if not plugin.is_torch:
        start = time.perf_counter()
        fit(task, run.plugin, run.hp, run.cfg, splits=load_data(run).splits)
        return {"fit_s": time.perf_counter() - start}
    splits = load_data(run).splits
    batch = run.cfg.batch_size
    train = splits["train"].subset(np.arange(min(len(splits["train"]), steps * batch)))
    small = {"train": train.subset(np.arange(warmup * batch)), "val": splits["val"].subset(np.arange(64))}
    fit(task, run.plugin, run.hp, run.cfg, splits=small)  # warm-up: allocator, kernels
    result = fit(task, run.plugin, run.hp, run.cfg, splits={"train": train, "val": splits["val"]})
    val = splits["val"]
    start = time.perf_counter()
    result.predictor.score(val)
    score_rate = len(val) / (time.perf_counter() - start)
    return {"train_seq_s": float(result.throughput), "score_seq_s": score_rate, "n_params": float(result.n_params)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="name or name:tiny")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker[0], int(args.worker[1]), args.steps, args.warmup)))
        return
    print(f"uptime: {os.popen('uptime').read().strip()}; cores: {os.cpu_count()}")
    rows: list[tuple[str, str, dict[int, list[float]]]] = []
    for model in args.models:
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for threads in (1, 2):
                cmd = [sys.executable, __file__, "--worker", model, str(threads), "--steps", str(args.steps),
                       "--warmup", str(args.warmup)]  # fmt: skip
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                runs[threads].append(json.loads(out))
        for key in runs[1][0]:
            if key != "n_params":
                rows.append((model, key, {t: [r[key] for r in runs[t]] for t in (1, 2)}))
        print(f"  {model}: done ({os.popen('uptime').read().strip()})", flush=True)
    print(f"\n{'model':<16}{'measure':<14}{'1 thread':>12}{'2 threads':>12}{'2 / 1':>8}")
    for model, key, values in rows:
        one, two = statistics.median(values[1]), statistics.median(values[2])
        ratio = two / one if key != "fit_s" else one / two  # > 1: two threads faster
        print(f"{model:<16}{key:<14}{one:>12.1f}{two:>12.1f}{ratio:>8.2f}")
    print("(medians of", args.repeats, "alternating runs; 2 / 1 > 1 means two threads are faster)")
    print(f"uptime: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
