"""Chromatin data by random index: the HDF5 files as they come (before) vs the memory-mapped cache (after).

Writes synthetic sets (`tasks._synthetic_chromatin.write_synthetic_streamed`: planted-motif sequences, the 12
labels repeated to `--labels` columns) in both real layouts — DeepSEA `train.mat` (MATLAB v7.3, h5py shape
(L, 4, N): sample axis last) and Basset (N, 4, 1, L) — into a temporary folder, converts them with the tasks'
own loaders (`chromatin.load_deepsea` / `load_basset`, cache in a temporary `$REGBENCH_CACHE`), then times:

- sequences/s of `take` on batches as the trainer draws them (random rows, `--batch` per batch) and as evaluation
  reads them (consecutive rows, `--eval-batch`), for `HDF5SeqDataset` on the source files (time-boxed by
  `--hdf5-seconds`: random access to the DeepSEA layout is slow), the cache, and an in-memory `(N, L)` array;
- the one-time conversion (rows/s);
- peak RSS (`VmHWM`) of a fresh subprocess per dataset size that loads the cached task splits and reads the same
  `--rss-batches` random training batches, with its anonymous and file-backed resident memory at the end.

The files were just written, so they sit in the OS page cache: this measures h5py, decoding and indexing, not the
disk. Run: `.venv/bin/python bench/chromatin_io.py [--formats deepsea basset] [--sizes 20000 200000] [--length 1000]
[--labels 919]` (default: DeepSEA only, about 2 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.spec import Dataset
from tasks import chromatin
from tasks._chromatin_formats import BASSET, BASSET_SPLITS, DEEPSEA_SPLITS, DEEPSEA_TRAIN, Layout
from tasks._hdf5_dataset import HDF5SeqDataset
from tasks._synthetic_chromatin import write_synthetic_streamed

FORMATS: dict[str, tuple[str, Layout, str, str]] = {  # name → (file within target, layout, x key, y key)
    "deepsea": ("train.mat", DEEPSEA_TRAIN, *DEEPSEA_SPLITS["train"][1:]),
    "basset": ("", BASSET, *BASSET_SPLITS["train"]),
}
LABEL = {"deepsea": "DeepSEA train.mat (L, 4, N)", "basset": "Basset (N, 4, 1, L)"}


def rate(fn: Callable[[np.ndarray], object], batches: list[np.ndarray], seconds: float = float("inf")) -> float:
    """Sequences per second of `fn` over `batches` (after one warm-up call), stopping after `seconds`."""
    fn(batches[0])
    seen, start = 0, time.perf_counter()
    for idx in batches:
        fn(idx)
        seen += len(idx)
        if time.perf_counter() - start > seconds:
            break
    return seen / (time.perf_counter() - start)


def target(folder: Path, fmt: str, n: int) -> Path:
    return folder / (f"deepsea_{n}" if fmt == "deepsea" else f"basset_{n}.h5")


def load(fmt: str, path: Path) -> dict[str, Dataset]:
    return chromatin.load_deepsea(path) if fmt == "deepsea" else chromatin.load_basset(path)


def memory_mb() -> dict[str, float]:
    """This process's peak and current resident memory from /proc/self/status, MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile")}


def rss_child(fmt: str, path: Path, n_batches: int, batch: int, seed: int) -> None:
    """In a fresh process: load the cached splits, read `n_batches` random batches, print memory as JSON."""
    train = load(fmt, path)["train"]
    rng = np.random.default_rng(seed)
    for _ in range(n_batches):
        train.take(rng.integers(0, len(train), size=batch))
    print(json.dumps(memory_mb()))


def measure_rss(fmt: str, path: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", fmt, str(path), "--rss-batches", str(args.rss_batches),
               "--batch", str(args.batch), "--seed", str(args.seed)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000], help="timings at the largest")
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=919)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n-batches", type=int, default=300)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=["deepsea"])
    parser.add_argument("--hdf5-seconds", type=float, default=5.0, help="time box per HDF5 measurement")
    parser.add_argument("--rss-batches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("FORMAT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rss_child(args.child[0], Path(args.child[1]), args.rss_batches, args.batch, args.seed)
        return
    with tempfile.TemporaryDirectory(prefix="chromatin_io-") as tmp:
        os.environ["REGBENCH_CACHE"] = str(Path(tmp) / "cache")
        run(Path(tmp), args)


def in_memory_rates(rng: np.random.Generator, n: int, args: argparse.Namespace, batches: list) -> list[float]:
    """Sequences/s of indexing `(N, L)` codes and `(N, C)` labels held in memory (the ceiling)."""
    codes = rng.integers(0, 5, size=(n, args.length), dtype=np.uint8)
    labels = (rng.integers(0, 20, size=(n, args.labels), dtype=np.uint8) == 0).astype(np.uint8)
    return [rate(lambda i: (codes[i], labels[i].astype(np.float32)), b) for b in batches]


def run(tmp: Path, args: argparse.Namespace) -> None:
    n = max(args.sizes)
    rng = np.random.default_rng(args.seed)
    random_batches = [rng.integers(0, n, size=args.batch) for _ in range(args.n_batches)]
    chunks = [np.arange(s, s + args.eval_batch) for s in rng.integers(0, n - args.eval_batch, size=args.n_batches)]
    load_1m = os.getloadavg()[0]
    print(f"N={n:,} L={args.length} labels={args.labels}; sequences/s (higher is better); {os.cpu_count()} CPUs, "
          f"load average {load_1m:.1f} at start")  # fmt: skip
    print(f"{'source':<44} {'random x' + str(args.batch):>14} {'consecutive x' + str(args.eval_batch):>18}")
    in_memory = in_memory_rates(rng, n, args, [random_batches, chunks])
    print(f"{'in-memory (N, L) uint8 array':<44} {in_memory[0]:>14,.0f} {in_memory[1]:>18,.0f}")
    notes, paths = [], {}
    for fmt in args.formats:
        inner, layout, x_key, y_key = FORMATS[fmt]
        for size in sorted(args.sizes):
            start = time.perf_counter()
            paths[fmt, size] = write_synthetic_streamed(target(tmp, fmt, size), fmt, size, args.length, args.seed,
                                                        args.labels)  # fmt: skip
            written = time.perf_counter() - start
            start = time.perf_counter()
            cached = load(fmt, paths[fmt, size])["train"]
            converted = time.perf_counter() - start
            notes.append(f"{LABEL[fmt]}, N={size:,}: written in {written:.1f} s; converted (all splits) in "
                         f"{converted:.1f} s = {size / converted:,.0f} train rows/s")  # fmt: skip
        source = paths[fmt, n] / inner if inner else paths[fmt, n]
        before = HDF5SeqDataset(source, x_key, y_key, layout)
        before.labels  # noqa: B018 -- the HDF5 reader loads labels once, before batches, as in training
        timed = [rate(before.take, b, args.hdf5_seconds) for b in (random_batches, chunks)]
        before.close()
        print(f"{'before: HDF5 ' + LABEL[fmt]:<44} {timed[0]:>14,.0f} {timed[1]:>18,.0f}")
        timed = [rate(cached.take, b) for b in (random_batches, chunks)]
        print(f"{'after:  memmap cache of ' + fmt:<44} {timed[0]:>14,.0f} {timed[1]:>18,.0f}")
    print("\n" + "\n".join(notes))
    print(f"\nmemory of a fresh process that loads the cached splits and takes {args.rss_batches} random batches of "
          f"{args.batch} (MiB; file-backed = mapped cache pages, shared and evictable):")  # fmt: skip
    for fmt in args.formats:
        for size in sorted(args.sizes):
            m = measure_rss(fmt, paths[fmt, size], args)
            print(f"  {fmt:<8} N={size:>9,}: peak RSS {m['VmHWM']:7.1f}   anonymous {m['RssAnon']:7.1f}   "
                  f"file-backed {m['RssFile']:6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
