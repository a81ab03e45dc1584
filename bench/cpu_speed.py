"""The CPU's matrix units: ms per training step and achieved GFLOP/s in fp32, bf16 autocast (`train.amp=true`) and
bf16 + `torch.compile` (`train.compile=true`), per model, in one run on one thread (`torch.set_num_threads(1)`).

- Peak: a 1024² GEMM in fp32 and bf16 (median of `--gemm-reps`); every model's GFLOP/s is also given as a
  fraction of the bf16 GEMM peak.
- Models: a training step (forward, BCE loss, backward, `fit`'s fused AdamW) of basset (600 bp, 164 outputs) and
  kmer_attention (200 bp) on B = 64 rows (`--batch`), built by the harness; FLOPs of one fp32 step counted by
  `torch.utils.flop_counter.FlopCounterMode`. Then the frozen DNABERT-2 encoder's embedding (`--lm`, default the
  weight-less `$REGBENCH_LM_CHECKPOINTS/dnabert2-117m` with seeded random weights: same FLOPs) of 200 bp sequences,
  as sequences/s in fp32 and bf16 (no compile: the checkpoint's remote code is run as written).
- `--before REF` (e.g. `main`): also the fp32 step of each model as its `models/<name>.py` reads at git REF (the
  module's code up to its registration, built with today's defaults, optimiser and seed), in the column "× REF".
- Each configuration: `--warmup` untimed steps (they include compilation), then `--repeats` rounds that time
  `--steps` steps of every configuration of the model in turn (interleaved, so a change in the machine's load falls
  on all of them); the median step over all rounds.
- Clock (`--clock`): `cpu` (default), the process's CPU time (`time.process_time`), which leaves out the time the
  one thread waited for a core on a shared machine; `wall` for wall-clock time. Numbers are under whatever load
  the machine has (memory bandwidth and caches are shared too): the load average is printed before and after;
  compare the ratios.

    .venv/bin/python -m bench.cpu_speed [--models basset kmer_attention] [--steps 5] [--repeats 3] [--batch 64]
        [--before main] [--lm DIR | --lm none]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.fit import adamw
from harness.training.modeling import SequenceClassifier, build_model
from harness.training.precision import autocast, compiled, cpu_bf16_supported

SHAPES = {"basset": (600, 164), "kmer_attention": (200, 1)}  # (length bp, outputs)
BATCH = 64  # rows per training step (`--batch`)
MODES = ("fp32", "bf16", "bf16+compile")
ROOT = Path(__file__).resolve().parents[1]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(fn: Callable[[], object], warmup: int, reps: int) -> float:
    """Median seconds of `fn()` over `reps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(step_times(fn, reps))


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]  # `--clock`


def step_times(fn: Callable[[], object], reps: int) -> list[float]:
    """Seconds of each of `reps` calls of `fn()` on `clock`."""
    times = []
    for _ in range(reps):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def gemm_peak(reps: int) -> dict[str, float]:
    """GFLOP/s of a 1024² GEMM in fp32 and bf16."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
        seconds = timed(lambda a=a, b=b: a @ b, 3, reps)
        out[name] = 2 * 1024**3 / seconds / 1e9
    return out


def model_at(name: str, io: IOSpec, ref: str) -> SequenceClassifier:
    """Model `name` with today's defaults, built by the code of `models/<name>.py` at git `ref` (up to its
    registration, so it registers nothing)."""
    path = f"models/{name}.py"
    shown = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode:
        raise SystemExit(f"--before {ref}: git show {ref}:{path} failed: {shown.stderr.strip()}")
    code = shown.stdout.split("\nPLUGIN = register_model(")[0]
    namespace: dict[str, object] = {"__name__": f"{name}_at_{ref}"}
    exec(compile(code, f"{ref}:{path}", "exec"), namespace)  # the repository's own code at `ref`
    encoder = namespace["build"](io, **dict(get_model(name).defaults))  # type: ignore[operator]
    return SequenceClassifier(encoder, io, siamese=False)


def io_for(name: str) -> IOSpec:
    """The input and output of model `name` here: sequences of its `SHAPES` length, its `SHAPES` outputs."""
    length, outputs = SHAPES[name]
    return IOSpec("seq", (length,), outputs, "multilabel" if outputs > 1 else "binary")


def train_step(
    name: str, mode: str, ref: str | None = None, batch: int = BATCH
) -> tuple[Callable[[], object], Callable[[], object]]:
    """`(step, fp32_step_for_counting)` of model `name` (as at git `ref`, if given): one optimiser step on a fixed
    random batch of `batch` rows."""
    length, outputs = SHAPES[name]
    plugin, io = get_model(name), io_for(name)
    torch.manual_seed(0)
    model = (build_model(plugin, io, dict(plugin.defaults)) if ref is None else model_at(name, io, ref)).train()
    codes = torch.randint(0, 4, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.bool)
    target = torch.randint(0, 2, (batch, outputs)).float()
    optimizer = adamw(model.parameters(), lr=1e-4, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    forward = compiled(model, mode == "bf16+compile")
    dtype = None if mode == "fp32" else torch.bfloat16

    def step(dtype: torch.dtype | None = dtype, forward: torch.nn.Module = forward) -> object:
        with autocast("cpu", dtype):
            loss = loss_fn(forward(codes, mask).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return step, lambda: step(None, model)


def step_flops(fp32_step: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fp32_step()
    return counter.get_total_flops()


def lm_embedding(folder: str, n: int, warmup: int) -> dict[str, float]:
    """Sequences/s of the frozen encoder on `n` random 200 bp sequences, fp32 vs bf16, and GFLOP per sequence."""
    from bench.embed import random_seqs
    from models.lm._checkpoint import load_backbone
    from models.lm._embeddings import EmbedSettings, Encoder, checkpoint_digest

    path = Path(folder).expanduser().resolve()
    backbone = load_backbone(path, random_init=not any(path.glob("*.bin")) and not any(path.glob("*.safetensors")))
    seqs = random_seqs(n, 200)
    out: dict[str, float] = {}
    for amp, name in (("false", "fp32"), ("true", "bf16")):
        spec = EmbedSettings(str(path), checkpoint_digest(path), "mean", 512, 16, "cpu", amp)
        encoder = Encoder(spec, backbone.tokenizer, backbone.encoder)
        seconds = timed(lambda encoder=encoder: encoder.embed(seqs, "timed"), warmup, 1)
        out[f"{name}_seq_s"] = n / seconds
    encoder = Encoder(EmbedSettings(str(path), "", "mean", 512, 16, "cpu", "false"), backbone.tokenizer,
                      backbone.encoder)  # fmt: skip
    with FlopCounterMode(display=False) as counter:
        encoder.embed(seqs[:16], "counted")
    out["gflop_per_seq"] = counter.get_total_flops() / 16 / 1e9
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=BATCH, help="rows per training step")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of --steps steps per config")
    parser.add_argument("--before", metavar="REF", help="also the fp32 step of the models' code at git REF")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="process CPU time or wall-clock time")
    parser.add_argument("--gemm-reps", type=int, default=10)
    default_lm = os.path.join(os.environ.get("REGBENCH_LM_CHECKPOINTS", ""), "dnabert2-117m")
    parser.add_argument("--lm", default=default_lm if os.environ.get("REGBENCH_LM_CHECKPOINTS") else "none")
    parser.add_argument("--lm-n", type=int, default=32, help="sequences embedded per timing")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(1)
    print(f"load average before: {loadavg()}; cores: {os.cpu_count()}; torch threads: 1; clock: {args.clock}; "
          f"bf16 units (AVX512-BF16/AMX): {cpu_bf16_supported()}")  # fmt: skip
    peak = gemm_peak(args.gemm_reps)
    print(f"1024² GEMM: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s (the peak below)")
    before = f"× {args.before}" if args.before else ""
    print(f"{'model':<16}{'mode':<14}{'ms/step':>9}{'GFLOP/s':>9}{'% peak':>8}{'× fp32':>8}{before:>10}")
    for name in args.models:
        configs = {f"fp32 ({args.before})": train_step(name, "fp32", args.before, args.batch)} if args.before else {}
        configs.update({mode: train_step(name, mode, batch=args.batch) for mode in MODES})
        flops = step_flops(configs["fp32"][1])
        times: dict[str, list[float]] = {}
        for step, _ in configs.values():
            step_times(step, args.warmup)  # untimed: compilation, allocator, caches
        for _ in range(args.repeats):
            for label, (step, _) in configs.items():
                times.setdefault(label, []).extend(step_times(step, args.steps))
        seconds = {label: statistics.median(t) for label, t in times.items()}
        for label, sec in seconds.items():
            rate = flops / sec / 1e9
            vs_before = f"{seconds[f'fp32 ({args.before})'] / sec:>9.2f}×" if args.before else ""
            print(f"{name:<16}{label:<14}{sec * 1e3:>9.0f}{rate:>9.1f}{100 * rate / peak['bf16']:>7.1f}%"
                  f"{seconds['fp32'] / sec:>7.2f}×{vs_before}", flush=True)  # fmt: skip
        print(f"{name:<16}{'':<14}(one step of {args.batch} rows: {flops / 1e9:.1f} GFLOP)")
    if args.lm != "none":
        lm = lm_embedding(args.lm, args.lm_n, 1)
        for mode in ("fp32", "bf16"):
            rate = lm[f"{mode}_seq_s"] * lm["gflop_per_seq"]
            print(f"{'lm embed 200bp':<16}{mode:<14}{lm[f'{mode}_seq_s']:>7.2f} seq/s{rate:>9.1f}"
                  f"{100 * rate / peak['bf16']:>7.1f}%{lm[f'{mode}_seq_s'] / lm['fp32_seq_s']:>7.2f}×")  # fmt: skip
        print(f"{'lm embed 200bp':<16}{'':<14}({Path(args.lm).name}: {lm['gflop_per_seq']:.2f} GFLOP per sequence)")
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
