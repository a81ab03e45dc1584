"""Training-step time of the attention models, explicit softmax attention (the path before SDPA) against
`F.scaled_dot_product_attention` (the default now), in one run; then torch intra-op threads 1 against 2.
With `--long`, instead: peak memory and step time of `kmer_attention` on long inputs, full against banded attention.

    .venv/bin/python bench/attention.py [--steps 10] [--rounds 7] [--batch 64] [--length 200]
    .venv/bin/python bench/attention.py --long [--long-batch 1] [--long-steps 1] [--window 128]

Long inputs (`--long`). `kmer_attention` at its plugin defaults (1 layer, 1 head, d_model 64, dropout 0.1, so
training runs SDPA's math path, which keeps the scores) with `max_len` = the length, one training step as below on
`--long-batch` sequences of 1, 4 and 16 kb, with full attention (`attention_window=0`) and with
`attention_window=--window` tokens; then 16 kb at a quarter and at 4 × the window, to show memory growing with the
window. Each row runs in its own process (its peak is its own): peak memory is the process's peak resident set
(`ru_maxrss`) minus its resident set after building the model and batch, before the first step (what the step
allocates; torch returns freed CPU memory to the system, so the peak is the step's); step time is the median wall
time of `--long-steps` steps after one warm-up step. A full-attention row whose scores alone would pass
`--full-limit-gb` is skipped (printed as such) rather than run.

Rows. `kmer_attention` at its plugin defaults on `--length` bp sequences (fixed length, all positions real), then
with dropout 0, then with dropout 0 on variable lengths (uniform in [length/2, length], N-padded: the padding mask
matters), then an evaluation forward pass at the defaults (batch `eval_batch_size`, no grad); `epsat` at a small
size (64 kernels, BiLSTM 32, 4 heads of 16, dense 50) on enhancer/promoter pairs of 1000/500 bp, at its
attn_dropout 0.2 and at 0. A training step is what `harness.training.fit` does per batch: zero_grad, forward,
BCE-with-logits loss, backward, AdamW step, on the full model (`build_model`: encoder + head), in train mode.
Why the dropout rows: torch's CPU flash kernel has no dropout, so a training step with attention dropout runs
SDPA's math fallback (the same work as the explicit path); the fused kernel runs at attention dropout 0, in
evaluation, and on GPUs (whose kernels take dropout).
Timing: `--rounds` rounds, each timing `--steps` steps of every variant in turn after one untimed warm-up step
(interleaved, so a busy machine slows both alike); the table gives the median ms/step over rounds (min–max) and
the ratios explicit/SDPA of the wall-time medians, of the process-CPU-time medians and of the fastest rounds (on a
busy machine the last two are the steadier: other processes slow the wall clock, not the work done). The thread
rows time the SDPA path of `kmer_attention` at its defaults with `torch.set_num_threads(1)` and `(2)`; the global
default is restored at the end (nothing else changes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.config import TrainConfig
from harness.data.encode import N_CODE
from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.modeling import build_model
from models.epsat import MultiHeadSelfAttention
from models.kmer_attention import SelfAttention

EPSAT_SMALL = {"n_kernels": 64, "hidden": 32, "n_heads": 4, "head_size": 16, "dense": 50}
Batch = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Timing:
    """Milliseconds per step: wall clock, and CPU time of the process (all its threads)."""

    wall: float
    cpu: float


def batch(rng: np.random.Generator, n: int, length: int, variable: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`(codes (n, length) uint8, mask (n, length) bool)`; variable: lengths uniform in [length/2, length]."""
    codes = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    lengths = rng.integers(length // 2, length + 1, size=n) if variable else np.full(n, length)
    mask = np.arange(length)[None, :] < lengths[:, None]
    codes[~mask] = N_CODE
    return torch.from_numpy(codes), torch.from_numpy(mask)


def set_fused(model: nn.Module, fused: bool) -> None:
    """Select the SDPA (`fused=True`) or the explicit softmax attention path in every attention module."""
    for m in model.modules():
        if isinstance(m, SelfAttention | MultiHeadSelfAttention):
            m.fused = fused


def make_step(name: str, io: IOSpec, hp: dict[str, Any], inputs: Batch, fused: bool, train: bool) -> Callable[[], None]:
    """One training step (`train`) or one evaluation forward pass of a freshly built model (seed 0: both variants
    start from the same weights)."""
    plugin = get_model(name)
    torch.manual_seed(0)
    model = build_model(plugin, io, {**plugin.defaults, **hp}).train(train)
    set_fused(model, fused)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    labels = torch.from_numpy(np.random.default_rng(1).integers(0, 2, size=(len(inputs[0]), 1))).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(*inputs), labels).backward()
        optimizer.step()

    @torch.no_grad()
    def forward() -> None:
        model(*inputs)

    return step if train else forward


def time_variants(variants: dict[Any, Callable[[], None]], steps: int, rounds: int) -> dict[Any, list[Timing]]:
    """(wall, CPU) ms per step of each variant, one pair per round; variants interleaved within each round."""
    out: dict[Any, list[Timing]] = {k: [] for k in variants}
    for _ in range(rounds):
        for key, step in variants.items():
            step()  # warm-up
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            out[key].append(
                Timing(1e3 * (time.perf_counter() - wall) / steps, 1e3 * (time.process_time() - cpu) / steps)
            )
    return out


def median(timings: list[Timing], field: str) -> float:
    return statistics.median(getattr(t, field) for t in timings)


def summary(timings: list[Timing]) -> str:
    walls = [t.wall for t in timings]
    return f"{median(timings, 'wall'):7.1f} ({min(walls):.0f}–{max(walls):.0f}) cpu {median(timings, 'cpu'):6.1f}"


def compare_paths(args: argparse.Namespace, rng: np.random.Generator) -> None:
    fixed, padded = IOSpec("seq", (args.length,), 1, "binary"), IOSpec("seq", (0,), 1, "binary")
    pair = IOSpec("seq_pair", (1000, 500), 1, "binary")
    one, var = batch(rng, args.batch, args.length, False), batch(rng, args.batch, args.length, True)
    pairs = (*batch(rng, args.batch, 1000, False), *batch(rng, args.batch, 500, False))
    evals = batch(rng, TrainConfig().eval_batch_size, args.length, False)
    span = f"{args.length // 2}–{args.length} bp padded"
    rows = {  # label → model, io, hyperparameters over the defaults, inputs, training step (else eval forward)
        f"kmer_attention defaults, {args.length} bp, train": ("kmer_attention", fixed, {}, one, True),
        f"kmer_attention dropout 0, {args.length} bp, train": ("kmer_attention", fixed, {"dropout": 0.0}, one, True),
        f"kmer_attention dropout 0, {span}, train": ("kmer_attention", padded, {"dropout": 0.0}, var, True),
        f"kmer_attention defaults, {args.length} bp, eval": ("kmer_attention", fixed, {}, evals, False),
        "epsat small, 1000/500 bp pairs, train": ("epsat", pair, EPSAT_SMALL, pairs, True),
        "epsat small, attn_dropout 0, train": ("epsat", pair, {**EPSAT_SMALL, "attn_dropout": 0.0}, pairs, True),
    }
    print(f"batch {args.batch} (eval {len(evals[0])}), {torch.get_num_threads()} torch threads, {args.rounds} rounds × "
          f"{args.steps} steps; ms/step: wall median (min–max), process CPU median")  # fmt: skip
    ratios = f"{'wall ratio':>10} {'cpu ratio':>9} {'min ratio':>9}"
    print(f"{'model':<46} {'explicit (before)':>32} {'SDPA (after)':>32} {ratios}")
    for label, (name, io, hp, inputs, train) in rows.items():
        variants = {fused: make_step(name, io, hp, inputs, fused, train) for fused in (False, True)}
        ms = time_variants(variants, args.steps, args.rounds)
        wall, cpu = (median(ms[False], f) / median(ms[True], f) for f in ("wall", "cpu"))
        fastest = min(t.wall for t in ms[False]) / min(t.wall for t in ms[True])
        row = f"{label:<46} {summary(ms[False]):>32} {summary(ms[True]):>32} {wall:9.2f}× {cpu:8.2f}× {fastest:8.2f}×"
        print(row, flush=True)


def compare_threads(args: argparse.Namespace, rng: np.random.Generator) -> None:
    io = IOSpec("seq", (args.length,), 1, "binary")
    step = make_step("kmer_attention", io, {}, batch(rng, args.batch, args.length, False), True, True)
    default = torch.get_num_threads()
    ms: dict[int, list[Timing]] = {1: [], 2: []}
    try:
        for _ in range(args.rounds):
            for threads in ms:
                torch.set_num_threads(threads)
                ms[threads] += time_variants({threads: step}, args.steps, 1)[threads]
    finally:
        torch.set_num_threads(default)
    print(f"\nthreads, kmer_attention defaults (SDPA), {args.length} bp, batch {args.batch}: ms/step as above")
    for threads, values in ms.items():
        print(f"  {threads} thread{'s' if threads > 1 else ' '}  {summary(values)}")
    faster = min(ms, key=lambda t: median(ms[t], "wall"))
    ratio = median(ms[3 - faster], "wall") / median(ms[faster], "wall")
    print(f"  faster by wall clock: {faster} thread{'s' if faster > 1 else ''} ({ratio:.2f}×)")
    print(f"  load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def rss_mib() -> float:
    """This process's peak resident set so far, MiB (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_row(length: int, window: int, n: int, steps: int) -> dict[str, float]:
    """One long-input row, in this process: `{"base_mib", "peak_mib", "ms"}` (see the module docstring)."""
    io = IOSpec("seq", (length,), 1, "binary")
    step = make_step("kmer_attention", io, {"max_len": length, "attention_window": window},
                     batch(np.random.default_rng(0), n, length, False), True, True)  # fmt: skip
    base = rss_mib()
    step()  # warm-up
    ms = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        ms.append(1e3 * (time.perf_counter() - start))
    return {"base_mib": base, "peak_mib": rss_mib(), "ms": statistics.median(ms)}


def compare_long(args: argparse.Namespace) -> None:
    """The long-input table: one subprocess per row (`--long-row LENGTH WINDOW`)."""
    w = args.window
    rows = [(kb, window) for kb in (1, 4, 16) for window in (0, w)] + [(16, w // 4), (16, 4 * w)]
    print(f"kmer_attention defaults (1 layer, 1 head, d_model 64, dropout 0.1), batch {args.long_batch}, one "
          f"training step; median of {args.long_steps} steps; {torch.get_num_threads()} torch threads")  # fmt: skip
    print(f"{'length':>7} {'attention':>16} {'step peak MiB':>14} {'ms/step':>10}")
    for kb, window in rows:
        length = 1024 * kb
        label = f"window {window}" if window else "full"
        scores_gb = 4 * args.long_batch * (length - 3) ** 2 / 2**30
        if not window and scores_gb > args.full_limit_gb:
            print(f"{kb:>5} kb {label:>16} {'skipped':>14}  (scores alone {scores_gb:.1f} GiB > --full-limit-gb)")
            continue
        cmd = [sys.executable, __file__, "--long-row", str(length), str(window), "--long-batch", str(args.long_batch),
               "--long-steps", str(args.long_steps)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            print(f"{kb:>5} kb {label:>16} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{kb:>5} kb {label:>16} {r['peak_mib'] - r['base_mib']:14.0f} {r['ms']:10.0f}", flush=True)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round and variant")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--length", type=int, default=200, help="sequence length of the kmer_attention rows")
    parser.add_argument("--long", action="store_true", help="only the long-input table (memory and time)")
    parser.add_argument("--long-batch", type=int, default=1, help="sequences per step in the long-input table")
    parser.add_argument("--long-steps", type=int, default=1, help="timed steps per long-input row")
    parser.add_argument("--window", type=int, default=128, help="attention_window (tokens) of the long-input rows")
    parser.add_argument("--full-limit-gb", type=float, default=2.0, help="skip full attention beyond these scores")
    parser.add_argument("--long-row", type=int, nargs=2, metavar=("LENGTH", "WINDOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.long_row:
        print(json.dumps(long_row(*args.long_row, args.long_batch, args.long_steps)))
        return
    if args.long:
        compare_long(args)
        return
    rng = np.random.default_rng(0)
    compare_paths(args, rng)
    compare_threads(args, rng)


if __name__ == "__main__":
    main()
