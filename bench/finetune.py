"""Fine-tuning throughput (training sequences/s: forward, backward, AdamW step) and peak memory of `lm_finetune`
(DNABERT-2, Nucleotide Transformer v2 or any local BERT-like checkpoint), full and LoRA, with and without gradient
checkpointing; the encoder and head are built by the plugin exactly as `regbench train` builds them.

Run: `.venv/bin/python bench/finetune.py --checkpoint DIR [--random-init] [--n 64] [--length 200] [--batch-size 16]
[--methods full,lora] [--device cpu] [--threads 1]`. `--random-init` first saves a seeded random-weight copy of a
weight-less folder (e.g. `../shared/lm_checkpoints/nt-v2-50m`) to a temporary folder. Each configuration runs in a
fresh process, so `peak RSS MB` (the process high-water mark) and `CUDA peak MB` are that configuration's own; on
CUDA the step runs under bf16 autocast (as `train.amp`). One untimed warm-up step per configuration.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

_MB = 2**20


def random_seqs(n: int, length: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [alphabet[rng.integers(0, 4, size=length)].tobytes().decode() for _ in range(n)]


def measure(config: dict[str, Any]) -> dict[str, float]:
    """One configuration in this (fresh) process: build, warm up, time `n` training sequences."""
    import numpy as np
    import torch

    from harness.data.datasets import Seqs
    from harness.plugins import get_model
    from harness.spec import IOSpec
    from harness.training.modeling import build_model
    from harness.training.resources import peak_rss_mb

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    device = torch.device(config["device"])
    plugin = get_model("lm_finetune")
    hp = {**plugin.defaults, "checkpoint": config["checkpoint"], "method": config["method"],
          "gradient_checkpointing": config["gc"], "max_length": config["max_length"]}  # fmt: skip
    model = build_model(plugin, IOSpec("seq", (0,), 1, "binary"), hp).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    branch = Seqs.from_strings(random_seqs(config["n"], config["length"]))
    codes = torch.from_numpy(branch.codes.astype(np.int64))
    mask = torch.arange(codes.shape[1])[None, :] < torch.from_numpy(branch.lengths)[:, None]
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 2, (config["n"], 1)).astype(np.float32))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step(rows: slice) -> None:
        with autocast:
            logits = model(codes[rows].to(device), mask[rows].to(device))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y[rows].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    bs = config["batch_size"]
    step(slice(0, bs))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(0, config["n"], bs):
        step(slice(i, i + bs))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    cuda_peak = torch.cuda.max_memory_allocated() / _MB if device.type == "cuda" else float("nan")
    return {**model.encoder.param_counts(), "seq_per_s": config["n"] / seconds, "peak_rss_mb": peak_rss_mb(),
            "cuda_peak_mb": cuda_peak}  # fmt: skip


def random_copy(folder: str, out: Path) -> str:
    from models.lm._checkpoint import load_backbone, save_backbone

    save_backbone(load_backbone(Path(folder).expanduser().resolve(), random_init=True), out)
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="local Hugging Face model folder")
    parser.add_argument("--random-init", action="store_true", help="random weights for a weight-less folder")
    parser.add_argument("--n", type=int, default=64, help="timed training sequences per configuration")
    parser.add_argument("--length", type=int, default=200, help="sequence length (bp)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512, help="tokens per window")
    parser.add_argument("--methods", default="full,lora", help="comma-separated: full, lora")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        folder = random_copy(args.checkpoint, Path(tmp) / "random") if args.random_init else args.checkpoint
        weights = " (random weights)" if args.random_init else ""
        print(f"checkpoint {args.checkpoint}{weights}, device {args.device}, threads {args.threads or 'default'}, "
              f"n={args.n}, length {args.length} bp, batch {args.batch_size}")  # fmt: skip
        print(f"{'method':>7} {'grad ckpt':>9} {'trainable':>12} {'frozen':>12} {'seq/s':>8} {'peak RSS MB':>12} "
              f"{'CUDA peak MB':>13}")  # fmt: skip
        for method in args.methods.split(","):
            for gc in (False, True):
                config = {"checkpoint": folder, "method": method, "gc": gc, "n": args.n, "length": args.length,
                          "batch_size": args.batch_size, "max_length": args.max_length, "device": args.device,
                          "threads": args.threads}  # fmt: skip
                with spawn.Pool(1) as pool:
                    r = pool.apply(measure, (config,))
                print(f"{method:>7} {gc!s:>9} {r['trainable']:>12,} {r['frozen']:>12,} {r['seq_per_s']:>8.2f} "
                      f"{r['peak_rss_mb']:>12.0f} {r['cuda_peak_mb']:>13.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
