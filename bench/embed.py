"""Frozen language-model embedding throughput (sequences/s) and peak memory, for the DNABERT-2 probe
(Zhou et al. 2023, arXiv:2306.15006) or any local BERT-like checkpoint; the encoder runs as in `featurize`
(`models.lm._embeddings`: windows, masked mean pooling, bf16 autocast on CUDA).

Run: `.venv/bin/python bench/embed.py [--checkpoint DIR] [--n 512] [--lengths 200,1000] [--device auto]`.
Without `--checkpoint` it builds a tiny random BERT (hidden 32, 2 layers) in a temporary folder. Seeded random
ACGT sequences; one untimed warm-up batch per configuration. Peak RSS is the process high-water mark so far.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness.training.resources import peak_rss_mb
from models.lm._embeddings import EmbedSettings, load_encoder, write_tiny_checkpoint

_MB = 2**20


def random_seqs(n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [alphabet[rng.integers(0, 4, size=length)].tobytes().decode() for _ in range(n)]


def measure(spec: EmbedSettings, n: int, length: int) -> dict[str, float]:
    """Embed `n` random sequences of `length` bp; throughput, windows per sequence, peak memory."""
    encoder = load_encoder(spec)
    seqs = random_seqs(n, length)
    encoder.embed(seqs[: spec.batch_size], "warm-up")
    cuda = encoder.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    encoder.embed(seqs, f"L={length}")
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "seq_per_s": n / seconds,
        "windows_per_seq": len(encoder.windows(seqs[:8]).ids) / 8,
        "peak_rss_mb": peak_rss_mb(),
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / _MB if cuda else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="local Hugging Face model folder (default: tiny random BERT)")
    parser.add_argument("--n", type=int, default=512, help="sequences per configuration")
    parser.add_argument("--lengths", default="200,1000", help="comma-separated sequence lengths (bp)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per window")
    parser.add_argument("--pooling", default="mean", choices=["mean", "cls"])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.checkpoint or str(write_tiny_checkpoint(Path(tmp) / "tiny_bert", max_tokens=512))
        spec = EmbedSettings.create(folder, args.pooling, args.max_length, args.batch_size, args.device)
        device = torch.cuda.get_device_name() if spec.device != "cpu" and torch.cuda.is_available() else "cpu"
        name = args.checkpoint or "tiny random BERT (hidden 32, 2 layers)"
        print(f"checkpoint {name}, device {device}, threads {torch.get_num_threads()}, n={args.n}, "
              f"batch {args.batch_size}, max_length {args.max_length}")  # fmt: skip
        print(f"{'length':>8} {'windows/seq':>12} {'seq/s':>10} {'peak RSS MB':>12} {'CUDA peak MB':>13}")
        for length in (int(v) for v in args.lengths.split(",")):
            r = measure(spec, args.n, length)
            print(f"{length:>8} {r['windows_per_seq']:>12.2f} {r['seq_per_s']:>10.1f} {r['peak_rss_mb']:>12.0f} "
                  f"{r['cuda_peak_mb']:>13.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
