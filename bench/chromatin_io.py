"""Streaming chromatin data from HDF5: sequences/s of `HDF5SeqDataset.take` vs an in-memory code array.

Writes an N × L one-hot file in both real layouts — DeepSEA `train.mat` (h5py shape (L, 4, N): sample axis last)
and Basset (N, 4, 1, L) — into a temporary folder, then times batches as the trainer draws them (sorted random
rows, `--batch` per batch) and as evaluation reads them (consecutive rows), against indexing a `(N, L)` uint8
array in memory. The files were just written, so they sit in the OS page cache: this measures h5py and decoding,
not the disk.

Run: `.venv/bin/python bench/chromatin_io.py [--n 200000] [--length 1000] [--batch 64]` (seeded).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from tasks._chromatin_formats import BASSET, BASSET_BASES, DEEPSEA_BASES, DEEPSEA_TRAIN, Layout, codes_to_onehot
from tasks._hdf5_dataset import HDF5SeqDataset

WRITE_BLOCK = 10_000  # samples per write


def write_file(path: Path, layout: Layout, n: int, length: int, n_labels: int, seed: int) -> None:
    """An (n, length) random one-hot file with axes `layout.x_axes`, written in blocks of samples."""
    rng = np.random.default_rng(seed)
    x_shape = {"LCN": (length, 4, n), "NC1L": (n, 4, 1, length)}[layout.x_axes]
    y_shape = (n_labels, n) if layout.y_axes == "CN" else (n, n_labels)
    with h5py.File(path, "w") as f:
        x = f.create_dataset("x", shape=x_shape, dtype=np.uint8)
        y = f.create_dataset("y", shape=y_shape, dtype=np.uint8)
        for lo in range(0, n, WRITE_BLOCK):
            hi = min(lo + WRITE_BLOCK, n)
            onehot = codes_to_onehot(rng.integers(0, 4, size=(hi - lo, length)).astype(np.uint8), layout.bases)
            labels = (rng.random((hi - lo, n_labels)) < 0.05).astype(np.uint8)
            if layout.x_axes == "LCN":
                x[:, :, lo:hi] = onehot.transpose(2, 1, 0)
                y[:, lo:hi] = labels.T
            else:
                x[lo:hi] = onehot[:, :, None, :]
                y[lo:hi] = labels


def rate(fn: Callable[[np.ndarray], object], batches: list[np.ndarray]) -> float:
    """Sequences per second of `fn` over `batches` (after one warm-up call)."""
    fn(batches[0])
    start = time.perf_counter()
    for idx in batches:
        fn(idx)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=919)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n-batches", type=int, default=100)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    random_batches = [np.sort(rng.choice(args.n, size=args.batch, replace=False)) for _ in range(args.n_batches)]
    starts = rng.integers(0, args.n - args.eval_batch, size=args.n_batches)
    chunks = [np.arange(s, s + args.eval_batch) for s in starts]
    memory = rng.integers(0, 4, size=(args.n, args.length)).astype(np.uint8)
    labels = (rng.random((args.n, args.labels)) < 0.05).astype(np.float32)
    print(f"N={args.n} L={args.length} labels={args.labels}; sequences/s (higher is better)")
    print(f"{'source':<34} {'random sorted x' + str(args.batch):>20} {'consecutive x' + str(args.eval_batch):>20}")
    in_memory = {"random": rate(lambda i: (memory[i], labels[i]), random_batches),
                 "chunks": rate(lambda i: (memory[i], labels[i]), chunks)}  # fmt: skip
    print(f"{'in-memory (N, L) uint8':<34} {in_memory['random']:>20,.0f} {in_memory['chunks']:>20,.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, layout, bases in (("DeepSEA train.mat (L, 4, N)", DEEPSEA_TRAIN, DEEPSEA_BASES),
                                    ("Basset (N, 4, 1, L)", BASSET, BASSET_BASES)):  # fmt: skip
            path = Path(tmp) / f"{layout.x_axes}.h5"
            start = time.perf_counter()
            write_file(path, Layout(layout.x_axes, layout.y_axes, bases), args.n, args.length, args.labels, args.seed)
            written = time.perf_counter() - start
            ds = HDF5SeqDataset(path, "x", "y", layout)
            ds.labels  # noqa: B018 -- labels are loaded once, as the trainer does, before timing batches
            random_rate, chunk_rate = rate(ds.take, random_batches), rate(ds.take, chunks)
            print(f"{name:<34} {random_rate:>20,.0f} {chunk_rate:>20,.0f}   (file {path.stat().st_size / 1e9:.2f} GB "
                  f"written in {written:.0f} s)")  # fmt: skip
            ds.close()


if __name__ == "__main__":
    main()
