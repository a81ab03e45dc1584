"""ISM throughput: batched mutants (all 3L mutants of a sequence in few forward passes) vs a naive loop of one
mutant per forward pass. Prints mutants/s for each and the speed-up.

    .venv/bin/python bench/ism.py [--n 8] [--length 200] [--batch-size 512] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.data.datasets import Seqs
from harness.interpret.ism import LogitFn, logit_fn, mutant_rows, saturation_mutagenesis
from harness.plugins import get_model
from harness.spec import IOSpec
from harness.training.modeling import build_model
from harness.training.predictor import TorchPredictor


def naive(fn: LogitFn, seqs: Seqs, device: str) -> int:
    """One forward per mutant (the loop ISM replaces); returns the number of mutants scored."""
    row, pos, alt = mutant_rows(seqs, None)
    codes = torch.from_numpy(seqs.codes.astype(np.int64)).to(device)
    mask = torch.ones_like(codes, dtype=torch.bool)
    with torch.inference_mode():
        for r, p, a in zip(row, pos, alt, strict=True):
            mutant = codes[r : r + 1].clone()
            mutant[0, p] = int(a)
            fn(mutant, mask[r : r + 1])
    return row.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--naive-n", type=int, default=1, help="sequences for the (slow) naive loop")
    args = parser.parse_args()
    torch.manual_seed(0)
    io = IOSpec("seq", (args.length,), 1, "binary")
    model = build_model(get_model("kmer_attention"), io, dict(get_model("kmer_attention").defaults))
    fn = logit_fn(TorchPredictor(model.to(args.device).eval()), args.device)
    rng = np.random.default_rng(0)
    seqs = Seqs.from_strings(["".join(rng.choice(list("ACGT"), args.length)) for _ in range(args.n)])
    saturation_mutagenesis(
        fn, seqs.subset(np.arange(1)), np.array(["w"]), batch_size=args.batch_size, device=args.device
    )  # warm-up
    rows = []
    for name, run, n_seqs in (
        (
            "batched",
            lambda s: saturation_mutagenesis(
                fn, s, np.arange(len(s)).astype(str), batch_size=args.batch_size, device=args.device
            ),
            args.n,
        ),
        ("naive (1 mutant / forward)", lambda s: naive(fn, s, args.device), args.naive_n),
    ):
        subset = seqs.subset(np.arange(n_seqs))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(subset)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rows.append((name, n_seqs * 3 * args.length, seconds))
    print(
        f"kmer_attention (defaults), L={args.length}, batch={args.batch_size}, device={args.device}, "
        f"threads={torch.get_num_threads()}"
    )
    print(f"{'method':<28}{'mutants':>10}{'seconds':>10}{'mutants/s':>12}")
    for name, mutants, seconds in rows:
        print(f"{name:<28}{mutants:>10}{seconds:>10.2f}{mutants / seconds:>12.0f}")
    print(f"speed-up: {(rows[0][1] / rows[0][2]) / (rows[1][1] / rows[1][2]):.1f}x")


if __name__ == "__main__":
    main()
