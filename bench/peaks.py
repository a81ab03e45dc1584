"""`chromatin.peaks` at genome scale: labelling every bin of hg38 from 200 peak files, and window extraction.

1. Labelling. hg38's chromosome sizes (chr1–22, X, Y, M; 3.1 × 10⁹ bp, about 15.5 M bins of 200 bp) and
   `--labels` BED files (default 200) of `--peaks` peaks each (default 50,000), drawn the way real peak sets look:
   every label picks its peaks from one shared pool of 1 M sites (jittered ±100 bp, 150–1000 bp wide), so labels
   co-occur as DNase/TF peaks do. Timed in a fresh subprocess: parsing the files (`read_bed`) and the vectorised
   labelling (`label_bins`), with the subprocess's peak RSS (VmHWM).
2. Window extraction. A synthetic genome of `3 × 10⁸ × --scale` bp (10 chromosomes, uniform bases) with 20 label
   files of `50,000 × --scale` peaks, built into the memory-mapped chromatin cache by the task's own `load()`
   (labelling, then 1000-bp windows per split), timed in a fresh subprocess with its peak RSS.
3. Before/after on the same genome: cutting 20,000 windows of chr1 one pyfaidx fetch per window
   (`tasks._genome.cut_windows`, how the EPI tasks cut windows) vs `WindowBlocks` (one read per chromosome, strided
   gather).

Run: `.venv/bin/python bench/peaks.py [--scale 1.0] [--labels 200] [--peaks 50000]`; files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HG38 = {  # UCSC hg38 chromosome sizes (primary assembly)
    "chr1": 248956422, "chr2": 242193529, "chr3": 198295559, "chr4": 190214555, "chr5": 181538259,
    "chr6": 170805979, "chr7": 159345973, "chr8": 145138636, "chr9": 138394717, "chr10": 133797422,
    "chr11": 135086622, "chr12": 133275309, "chr13": 114364328, "chr14": 107043718, "chr15": 101991189,
    "chr16": 90338345, "chr17": 83257441, "chr18": 80373285, "chr19": 58617616, "chr20": 64444167,
    "chr21": 46709983, "chr22": 50818468, "chrX": 156040895, "chrY": 57227415, "chrM": 16569,
}  # fmt: skip


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_peak_files(folder: Path, sizes: dict[str, int], n_labels: int, n_peaks: int, pool: int, seed: int) -> None:
    """`n_labels` BED files of `n_peaks` peaks drawn from one pool of `pool` sites."""
    rng = np.random.default_rng(seed)
    names = np.array(list(sizes))
    length = np.array(list(sizes.values()), dtype=np.int64)
    chrom = rng.choice(len(names), size=pool, p=length / length.sum())
    centre = (rng.random(pool) * (length[chrom] - 2000)).astype(np.int64) + 1000
    folder.mkdir(parents=True, exist_ok=True)
    for j in range(n_labels):
        pick = rng.choice(pool, size=n_peaks, replace=False)
        mid = centre[pick] + rng.integers(-100, 101, n_peaks)
        half = rng.integers(75, 500, n_peaks)
        rows = np.char.add(np.char.add(names[chrom[pick]], "\t"), np.char.add(
            np.char.add((mid - half).astype(str), "\t"), (mid + half).astype(str)))  # fmt: skip
        (folder / f"label{j:03d}.bed").write_text("\n".join(rows.tolist()) + "\n")


def write_genome(path: Path, total: int, n_chroms: int, seed: int) -> dict[str, int]:
    """A FASTA of `n_chroms` equal chromosomes of uniform random bases, 60 per line."""
    rng = np.random.default_rng(seed)
    size = total // n_chroms // 60 * 60
    with open(path, "wb") as f:
        for c in range(n_chroms):
            f.write(f">chr{c + 1}\n".encode())
            for lo in range(0, size, 60 * 100_000):
                n = min(60 * 100_000, size - lo)
                body = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n)].reshape(-1, 60)
                f.write(np.hstack([body, np.full((len(body), 1), ord("\n"), np.uint8)]).tobytes())
    return {f"chr{c + 1}": size for c in range(n_chroms)}


def stage_label(folder: Path) -> dict[str, float]:
    from tasks import _peak_intervals as pi

    index = {name: i for i, name in enumerate(HG38)}
    layout = pi.BinLayout(tuple(HG38), np.array(list(HG38.values()), dtype=np.int64), 200)
    start = time.perf_counter()
    peaks = [pi.read_bed(p, index, "hg38") for p in sorted(folder.glob("*.bed"))]
    parsed = time.perf_counter()
    bins, labels = pi.label_bins(layout, peaks, 0.5)
    done = time.perf_counter()
    n_bins = int(layout.n_bins.sum())
    return {"bins": n_bins, "labels": len(peaks), "peaks": sum(p.start.size for p in peaks), "parse_s": parsed - start,
            "label_s": done - parsed, "total_s": done - start, "bins_per_s": n_bins / (done - start),
            "positive_bins": int(bins.size), "positive_pairs": int(labels.sum(dtype=np.int64)),
            "peak_rss_mb": vm_hwm_mb()}  # fmt: skip


def stage_extract(genome: Path, peaks: Path, cache: Path) -> dict[str, float]:
    import os

    os.environ["REGBENCH_CACHE"] = str(cache)
    from tasks import peaks as task_module

    given = {"genome": str(genome), "peaks": str(peaks), "test_chroms": "chr9,chr10", "val_chroms": "chr8"}
    opts = task_module.merge("data", task_module.SETTINGS, given)
    start = time.perf_counter()
    src = task_module.resolve(opts)
    splits = task_module.load(src)
    elapsed = time.perf_counter() - start
    n = sum(len(ds) for ds in splits.values())
    return {"genome_bp": int(src.layout.sizes.sum()), "examples": n, **{f"n_{k}": len(v) for k, v in splits.items()},
            "build_s": elapsed, "windows_per_s": n / elapsed, "peak_rss_mb": vm_hwm_mb()}  # fmt: skip


def compare_cutting(genome: Path, sizes: dict[str, int], n: int = 20_000) -> tuple[float, float]:
    """Windows/s of per-window pyfaidx fetches vs WindowBlocks, on the same `n` sorted bins of chr1 (WindowBlocks
    reads the whole chromosome once, as the build does)."""
    from tasks import _peak_intervals as pi
    from tasks._genome import cut_windows
    from tasks.peaks import WindowBlocks

    layout = pi.BinLayout(tuple(sizes), np.array(list(sizes.values()), dtype=np.int64), 200)
    bins = np.sort(np.random.default_rng(1).choice(int(layout.n_bins[0]), n, replace=False))
    chrom = np.asarray(layout.names)[layout.chrom_of(bins)]
    starts = layout.local_start(bins) + 100 - 500
    t0 = time.perf_counter()
    before = cut_windows(genome, chrom, starts, 1000, [""] * n)
    t1 = time.perf_counter()
    with WindowBlocks(genome, layout, bins, np.zeros((n, 1), np.uint8), 1000) as blocks:
        after, _ = blocks.read(0, n)
    t2 = time.perf_counter()
    assert np.array_equal(before.codes, after), "the two cutters disagree"
    return n / (t1 - t0), n / (t2 - t1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 3e8 bp extraction genome")
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--peaks", type=int, default=50_000)
    parser.add_argument("--stage", choices=("label", "extract"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "label":
        print(json.dumps(stage_label(args.dir)))
        return
    if args.stage == "extract":
        print(json.dumps(stage_extract(args.dir / "genome.fa", args.dir / "peaks", args.dir / "cache")))
        return
    load = Path("/proc/loadavg").read_text().split()[0]
    with tempfile.TemporaryDirectory(prefix="bench-peaks-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        write_peak_files(root / "hg38", HG38, args.labels, args.peaks, 1_000_000, 0)
        print(f"wrote {args.labels} hg38 peak files × {args.peaks} peaks in {time.perf_counter() - t:.1f} s")
        label = run_stage("label", root / "hg38")
        print(f"labelling hg38: {label['bins']:,} bins × {label['labels']} labels ({label['peaks']:,} peaks): "
              f"parse {label['parse_s']:.1f} s + label {label['label_s']:.1f} s = {label['total_s']:.1f} s, "
              f"{label['bins_per_s'] / 1e6:.2f} M bins/s; {label['positive_bins']:,} positive bins, "
              f"{label['positive_pairs']:,} positive (bin, label) pairs; "
              f"peak RSS {label['peak_rss_mb']:.0f} MB")  # fmt: skip
        total = int(3e8 * args.scale)
        t = time.perf_counter()
        (root / "ext").mkdir()
        sizes = write_genome(root / "ext" / "genome.fa", total, 10, 0)
        write_peak_files(root / "ext" / "peaks", sizes, 20, int(50_000 * args.scale), int(400_000 * args.scale), 1)
        print(f"wrote a {sum(sizes.values()):,} bp genome and 20 peak files in {time.perf_counter() - t:.1f} s")
        ext = run_stage("extract", root / "ext")
        print(f"window extraction into the cache: {ext['examples']:,} examples (train {ext['n_train']:,}, val "
              f"{ext['n_val']:,}, test {ext['n_test']:,}) × 1000 bp in {ext['build_s']:.1f} s "
              f"(labelling included), {ext['windows_per_s']:,.0f} windows/s; "
              f"peak RSS {ext['peak_rss_mb']:.0f} MB")  # fmt: skip
        before, after = compare_cutting(root / "ext" / "genome.fa", sizes)
        print(f"cutting 20,000 windows of chr1: per-window pyfaidx {before:,.0f}/s (before) vs WindowBlocks "
              f"{after:,.0f}/s (after): {after / before:.1f}×")  # fmt: skip
    print(f"load average at start {load}, at end {Path('/proc/loadavg').read_text().split()[0]} (2 cores)")


def run_stage(stage: str, folder: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--stage", stage, "--dir", str(folder)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
