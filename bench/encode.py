"""Encoding and loading throughput: vectorised `encode_many` vs a per-character Python loop, and the
genomic_benchmarks one-file-per-sequence layout read file by file vs our `.npz` cache.

Run: `.venv/bin/python bench/encode.py [--n 20000]` (seeded; ensembl-like lengths, mean 270 bp, sd 123).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.data.encode import encode_many

LOOKUP = {b: i for i, b in enumerate("ACGTN")}
NAME = "bench_dataset"


def timed(fn: Callable[[], object], repeats: int = 3) -> float:
    """Best wall time of `repeats` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def make_seqs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.normal(270, 123, size=n), 50, 600).astype(int)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [alphabet[rng.integers(0, 4, size=n_bp)].tobytes().decode() for n_bp in lengths]


def python_loop(seqs: list[str]) -> np.ndarray:
    """The per-character baseline: a dict lookup per base into a padded array."""
    out = np.full((len(seqs), max(map(len, seqs))), 4, dtype=np.uint8)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = [LOOKUP[c] for c in seq]
    return out


def write_layout(root: Path, seqs: list[str]) -> None:
    """genomic_benchmarks' cache layout: <root>/<name>/{train,test}/{positive,negative}/<id>.txt."""
    for i, seq in enumerate(seqs):
        folder = root / NAME / ("train" if i % 5 else "test") / ("positive" if i % 2 else "negative")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(seq)


def read_file_by_file(root: Path) -> list[str]:
    """What a per-file loader does on every run: list, open and read each file."""
    return [p.read_text().strip() for p in sorted((root / NAME).glob("*/*/*.txt"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="number of sequences (default 20000)")
    args = parser.parse_args()
    seqs = make_seqs(args.n)
    bases = sum(map(len, seqs))
    subset = seqs[: max(1, args.n // 10)]  # the Python loop is slow: time a tenth, report per base
    sub_bases = sum(map(len, subset))
    rows: list[tuple[str, float, float]] = []  # (what, seconds for all n, bases/s)
    t_vec = timed(lambda: encode_many(seqs))
    rows.append(("encode_many (vectorised LUT)", t_vec, bases / t_vec))
    t_loop = timed(lambda: python_loop(subset), repeats=1) * bases / sub_bases
    rows.append(("per-character Python loop", t_loop, bases / t_loop))

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["REGBENCH_CACHE"] = str(Path(tmp) / "cache")
        from tasks import _genomic_benchmarks as gb

        root = Path(tmp) / "gb"
        write_layout(root, seqs)
        t_files = timed(lambda: encode_many(read_file_by_file(root)), repeats=1)
        rows.append((f"{args.n} .txt files, read + encode", t_files, bases / t_files))
        start = time.perf_counter()
        gb.load_official(NAME, root)
        t_build = time.perf_counter() - start
        rows.append(("our loader, first run (walk + write .npz)", t_build, bases / t_build))
        t_npz = timed(lambda: gb.load_official(NAME, root))
        rows.append(("our loader, cached (.npz → padded Seqs)", t_npz, bases / t_npz))
        npz_mb = gb.cache_path(NAME, root).stat().st_size / 1e6

    print(f"{args.n} sequences, {bases:,} bases; .npz cache {npz_mb:.1f} MB")
    print(f"{'method':<44}{'seconds':>10}{'Mbases/s':>12}{'vs encode_many':>16}")
    for what, seconds, rate in rows:
        print(f"{what:<44}{seconds:>10.3f}{rate / 1e6:>12.2f}{seconds / t_vec:>15.1f}x")
    print(f"cached load is {t_files / t_npz:.0f}x faster than reading the files one by one")


if __name__ == "__main__":
    main()
