"""`chromatin.peaks`: a multi-label chromatin task built from your own peak files and genome, the DeepSEA way.

`data.peaks` is a sheet (TSV: `name`, `path`, optional `group`) or a folder of BED/narrowPeak files (one label per
file, named by its stem); `data.genome` a FASTA (indexed by pyfaidx on first use). Each chromosome is cut into
`data.bin`-bp bins; a bin is positive for a label when `data.min_overlap` of it lies in the label's merged peaks
(`tasks._peak_intervals`). Examples are the bins positive for at least one label plus `data.negatives` × as many
seeded all-negative bins; inputs are `data.window`-bp windows centred on the bin (N past chromosome ends); ids are
`chrom:start-end`. Splits are by chromosome (`data.test_chroms`, `data.val_chroms`, train = the rest). The three
splits are built once into the memory-mapped chromatin cache (`tasks._chromatin_cache`), keyed on the genome's and
every peak file's fingerprint and the options.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Setting, Settings, merge
from harness.data.encode import N_CODE
from harness.data.split_cache import locked
from harness.paths import cache_dir
from harness.plugins import TASKS
from harness.spec import Dataset, IOSpec
from tasks import _peak_intervals as pi
from tasks._chromatin_cache import MemmapSeqDataset, cached_build, fingerprint, valid
from tasks.chromatin import ChromatinTask, metric_fn

SETTINGS = Settings(
    {
        "genome": Setting("", accepts="a FASTA file"),
        "peaks": Setting("", accepts="a peak sheet (TSV: name, path[, group]) or a folder of BED/narrowPeak files"),
        "bin": Setting(200, ge=1, le=1_000_000),
        "min_overlap": Setting(0.5, gt=0, le=1),
        "negatives": Setting(0.0, ge=0),
        "window": Setting(1000, ge=1, le=1_000_000),
        "chroms": Setting("", accepts="comma-separated chromosome names (empty: all)"),
        "blacklist": Setting("", accepts="a BED file of regions to drop (empty: none)"),
        "test_chroms": Setting("chr8,chr9", accepts="comma-separated chromosome names"),
        "val_chroms": Setting("chr7", accepts="comma-separated chromosome names"),
        "seed": Setting(0, ge=0),
    }
)
BUILD_VERSION = 1  # bump when the construction changes


def _names(value: str) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()]


def open_genome(path: str) -> tuple[Path, tuple[str, ...], np.ndarray]:
    """The FASTA (indexed when it has no `.fai`), its chromosome names and `(n_chrom,)` sizes."""
    import pyfaidx

    if not path:
        raise pi.PeakError("chromatin.peaks needs data.genome=FASTA (the genome the peaks were called on)")
    genome = Path(path).expanduser()
    if not genome.is_file():
        raise pi.PeakError(f"data.genome={path}: no such FASTA file")
    try:
        fasta = pyfaidx.Fasta(str(genome), as_raw=True, rebuild=False)
    except (pyfaidx.FastaIndexingError, ValueError, OSError) as err:
        raise pi.PeakError(f"data.genome={path}: not a readable FASTA ({err})") from None
    with fasta:
        names = tuple(fasta.keys())
        sizes = np.array([len(fasta[n]) for n in names], dtype=np.int64)
    if not names:
        raise pi.PeakError(f"data.genome={path}: the FASTA holds no sequences")
    return genome, names, sizes


@dataclass
class PeakSource:
    """Everything the construction reads, resolved and checked (no peak file parsed yet)."""

    genome: Path
    layout: pi.BinLayout
    files: list[pi.PeakFile]
    blacklist: Path | None
    opts: dict[str, Any]
    chrom_sets: dict[str, list[str]] = field(default_factory=dict)  # "chroms", "test", "val"

    @property
    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.layout.names)}

    def key(self) -> dict[str, Any]:
        """The cache key: version, fingerprints of the genome, each peak file and the blacklist, and the options."""
        files = [[f.name, str(f.path.resolve()), fingerprint(f.path)] for f in self.files]
        black = [str(self.blacklist.resolve()), fingerprint(self.blacklist)] if self.blacklist else None
        opts = {k: v for k, v in self.opts.items() if k not in ("genome", "peaks", "blacklist")}
        return {"build": BUILD_VERSION, "genome": [str(self.genome.resolve()), fingerprint(self.genome)],
                "peaks": files, "blacklist": black, "options": opts}  # fmt: skip


def resolve(opts: dict[str, Any]) -> PeakSource:
    genome, names, sizes = open_genome(opts["genome"])
    if not opts["peaks"]:
        raise pi.PeakError("chromatin.peaks needs data.peaks=SHEET.tsv or data.peaks=DIR")
    files = pi.read_sheet(Path(opts["peaks"]).expanduser())
    blacklist = Path(opts["blacklist"]).expanduser() if opts["blacklist"] else None
    if blacklist is not None and not blacklist.is_file():
        raise pi.PeakError(f"data.blacklist={opts['blacklist']}: no such file")
    sets = {"chroms": _names(opts["chroms"]) or list(names), "test": _names(opts["test_chroms"]),
            "val": _names(opts["val_chroms"])}  # fmt: skip
    for key, chroms in sets.items():
        unknown = [c for c in chroms if c not in names]
        if unknown:
            option = {"chroms": "chroms", "test": "test_chroms", "val": "val_chroms"}[key]
            raise pi.PeakError(f"data.{option}: {', '.join(unknown[:5])} not in the genome {genome}, which has "
                               f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''}")  # fmt: skip
    both = sorted(set(sets["test"]) & set(sets["val"]))
    if both:
        raise pi.PeakError(f"data.test_chroms and data.val_chroms share {', '.join(both)}")
    return PeakSource(genome, pi.BinLayout(names, sizes, opts["bin"]), files, blacklist, opts, sets)


def examples(src: PeakSource) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{split: (bins (n,) int64 sorted, labels (n, C) uint8)}` from one vectorised labelling pass."""
    layout, opts = src.layout, src.opts
    peaks = [pi.read_bed(f.path, src.index, str(src.genome)) for f in src.files]
    bins, labels = pi.label_bins(layout, peaks, opts["min_overlap"])
    allowed = np.isin(np.asarray(layout.names), src.chrom_sets["chroms"])
    keep = allowed[layout.chrom_of(bins)]
    excluded = bins
    if src.blacklist is not None:
        black = pi.read_bed(src.blacklist, src.index, str(src.genome))
        dropped, _ = pi.bin_overlaps(*pi.merge_intervals(*layout.to_global(black)), layout.bin)
        keep &= ~np.isin(bins, dropped)
        excluded = np.union1d(bins, dropped)
    bins, labels = bins[keep], labels[keep]
    n_neg = round(opts["negatives"] * bins.size)
    if n_neg:
        negatives = pi.sample_negatives(layout, allowed, excluded, n_neg, opts["seed"])
        order = np.argsort(np.concatenate([bins, negatives]), kind="stable")
        bins = np.concatenate([bins, negatives])[order]
        labels = np.concatenate([labels, np.zeros((n_neg, labels.shape[1]), np.uint8)])[order]
    chrom_names = np.asarray(layout.names)[layout.chrom_of(bins)]
    test, val = np.isin(chrom_names, src.chrom_sets["test"]), np.isin(chrom_names, src.chrom_sets["val"])
    out = {"train": ~(test | val), "val": val, "test": test}
    for split, mask in out.items():
        if not mask.any():
            chosen = f"data.test_chroms={opts['test_chroms']}, data.val_chroms={opts['val_chroms']}"
            raise pi.PeakError(f"chromatin.peaks: the {split} split is empty ({bins.size} examples in all; {chosen})")
    return {split: (bins[mask], labels[mask]) for split, mask in out.items()}


class WindowBlocks:
    """`Blocks` of windows centred on sorted global bins, cut from the genome one chromosome at a time (each
    chromosome read once, then windows gathered by a strided view: no per-window Python)."""

    def __init__(self, genome: Path, layout: pi.BinLayout, bins: np.ndarray, labels: np.ndarray, window: int) -> None:
        self.path, self.layout, self.bins, self.labels = genome, layout, bins, labels
        self.n, self.length, self.n_labels = int(bins.size), window, int(labels.shape[1])
        self._chrom = -1
        self._padded = np.zeros(0, np.uint8)

    def __enter__(self) -> WindowBlocks:
        import pyfaidx

        self._fasta = pyfaidx.Fasta(str(self.path), as_raw=True, rebuild=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._fasta.close()
        self._padded = np.zeros(0, np.uint8)

    def chromosome(self, c: int) -> np.ndarray:
        """`(size + 2 × window,)` uint8 codes of chromosome `c`, N-padded by a window on each side."""
        if c != self._chrom:
            self._padded = np.zeros(0, np.uint8)  # free the previous chromosome first
            self._padded = chromosome_codes(self._fasta, self.layout.names[c], self.length)
            self._chrom = c
        return self._padded

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        bins = self.bins[lo:hi]
        chrom = self.layout.chrom_of(bins)
        starts = self.layout.local_start(bins) + self.layout.bin // 2 - self.length // 2 + self.length
        codes = np.empty((bins.size, self.length), np.uint8)
        for c in np.unique(chrom).tolist():
            rows = np.flatnonzero(chrom == c)
            view = np.lib.stride_tricks.sliding_window_view(self.chromosome(c), self.length)
            codes[rows] = view[starts[rows]]
        return codes, self.labels[lo:hi]


def chromosome_codes(fasta: Any, name: str, pad: int) -> np.ndarray:
    """Codes (A, C, G, T, N = 0..4; other letters N) of a whole chromosome with `pad` N on each side."""
    from harness.data.encode import _LUT

    raw = np.frombuffer(fasta[name][:].encode("latin-1"), dtype=np.uint8)
    out = np.full(raw.size + 2 * pad, N_CODE, dtype=np.uint8)
    codes = _LUT[raw]
    codes[codes > N_CODE] = N_CODE
    out[pad : pad + raw.size] = codes
    return out


def load(src: PeakSource) -> dict[str, Dataset]:
    """The three splits from the cache, built first (once, under a lock) when any is missing or stale."""
    key = src.key()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    root = cache_dir() / "chromatin"
    root.mkdir(parents=True, exist_ok=True)
    folders = {split: root / f"peaks-{digest}-{split}" for split in ("train", "val", "test")}
    source = {"source": "chromatin.peaks", "key": digest}
    with locked(root / f"peaks-{digest}.lock"):
        if not all(valid(folder, source) for folder in folders.values()):
            built = examples(src)
            for split, (bins, labels) in built.items():
                cached_build(folders[split], source,
                             lambda b=bins, y=labels: WindowBlocks(src.genome, src.layout, b, y, src.opts["window"]),
                             ids=lambda b=bins: src.layout.ids(b))  # fmt: skip
    return {split: MemmapSeqDataset(folder) for split, folder in folders.items()}


def groups_of(files: list[pi.PeakFile]) -> dict[str, np.ndarray]:
    """Label indices per sheet `group` (labels without a group are in no group)."""
    names = sorted({f.group for f in files if f.group})
    return {g: np.array([i for i, f in enumerate(files) if f.group == g]) for g in names}


@TASKS.decorator("chromatin.peaks", "your peak files (BED/narrowPeak) + genome FASTA → DeepSEA-style multi-label bins")
def peaks_task(**options: Any) -> ChromatinTask:
    opts = merge("data", SETTINGS, options)
    src = resolve(opts)
    names = tuple(f.name for f in src.files)
    groups = groups_of(src.files)
    protocol = f"chromosome_test{'+'.join(src.chrom_sets['test'])}_val{'+'.join(src.chrom_sets['val'])}"
    return ChromatinTask(
        name="chromatin.peaks",
        io=IOSpec("seq", (opts["window"],), len(names), "multilabel", names),
        primary_metric="auroc_median",
        split_protocol=protocol,
        synthetic=False,
        load=lambda: load(src),
        metric_fn=metric_fn(groups),
        description=f"{len(names)} peak sets on {src.genome.name}, {opts['bin']} bp bins, {opts['window']} bp windows",
        label_groups=groups,
    )
