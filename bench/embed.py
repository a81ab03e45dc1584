"""Frozen language-model embedding throughput (sequences/s) and peak memory, for the probes on DNABERT-2
(Zhou et al. 2023, arXiv:2306.15006), Nucleotide Transformer v2 or any local BERT-like checkpoint; the encoder runs
as in `featurize` (`models.lm._embeddings`: windows, masked mean pooling, bf16 autocast on CUDA).

Run: `.venv/bin/python bench/embed.py [--checkpoint DIR [--random-init]] [--n 512] [--lengths 200,1000]
[--device auto] [--threads N]`. Without `--checkpoint` it builds a tiny random BERT (hidden 32, 2 layers) in a
temporary folder; `--random-init` gives a weight-less folder (e.g. `../shared/lm_checkpoints/dnabert2-117m`) seeded
random weights.
Seeded random ACGT sequences; one untimed warm-up batch per configuration. Peak RSS is the process high-water mark
so far (it includes loading the model).
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
from models.lm._checkpoint import count_parameters, load_backbone
from models.lm._embeddings import (
    EmbedSettings,
    Encoder,
    checkpoint_digest,
    load_encoder,
    write_tiny_checkpoint,
)

_MB = 2**20


def random_seqs(n: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [alphabet[rng.integers(0, 4, size=length)].tobytes().decode() for _ in range(n)]


def make_encoder(folder: str, random_init: bool, pooling: str, max_length: int, batch: int, device: str) -> Encoder:
    """The probe's encoder: via `load_encoder` (the training path), or random weights for a weight-less folder."""
    if not random_init:
        return load_encoder(EmbedSettings.create(folder, pooling, max_length, batch, device))
    path = Path(folder).expanduser().resolve()
    backbone = load_backbone(path, random_init=True)
    spec = EmbedSettings(str(path), checkpoint_digest(path), pooling, max_length, batch, device)
    return Encoder(spec, backbone.tokenizer, backbone.encoder)


def measure(encoder: Encoder, n: int, length: int) -> dict[str, float]:
    """Embed `n` random sequences of `length` bp; throughput, windows per sequence, peak memory."""
    spec = encoder.spec
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
    parser.add_argument("--random-init", action="store_true", help="random weights for a weight-less --checkpoint")
    parser.add_argument("--n", type=int, default=512, help="sequences per configuration")
    parser.add_argument("--lengths", default="200,1000", help="comma-separated sequence lengths (bp)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per window")
    parser.add_argument("--pooling", default="mean", choices=["mean", "cls"])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.checkpoint or str(write_tiny_checkpoint(Path(tmp) / "tiny_bert", max_tokens=512))
        encoder = make_encoder(folder, args.random_init, args.pooling, args.max_length, args.batch_size, args.device)
        device = torch.cuda.get_device_name() if encoder.device.type == "cuda" else "cpu"
        name = args.checkpoint or "tiny random BERT (hidden 32, 2 layers)"
        print(
            f"checkpoint {name}{' (random weights)' if args.random_init else ''}, "
            f"{count_parameters(encoder.model):,} encoder parameters, device {device}, "
            f"threads {torch.get_num_threads()}, n={args.n}, batch {args.batch_size}, max_length {args.max_length}"
        )
        print(f"{'length':>8} {'windows/seq':>12} {'seq/s':>10} {'peak RSS MB':>12} {'CUDA peak MB':>13}")
        for length in (int(v) for v in args.lengths.split(",")):
            r = measure(encoder, args.n, length)
            print(f"{length:>8} {r['windows_per_seq']:>12.2f} {r['seq_per_s']:>10.1f} {r['peak_rss_mb']:>12.0f} "
                  f"{r['cuda_peak_mb']:>13.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
