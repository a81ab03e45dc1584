"""Peak files → labelled genome bins, DeepSEA-style, in vectorised passes over sorted intervals.

Coordinates are 0-based, half-open. Each chromosome is cut into `size // bin` whole bins from position 0 (a last
partial bin is dropped). Bins of all chromosomes are numbered globally, chromosome after chromosome in the genome's
order (`BinLayout`); a position `p` of chromosome `c` is global position `layout.pos_offset[c] + p`, where a
chromosome's offset is the start of its first global bin, so `global_pos // bin` is the global bin. A bin is
positive for a label when the label's merged peaks cover at least `min_overlap × bin` bp of it. Labelling never
loops over bins in Python: per label, merged intervals are expanded to the bins they touch (`np.repeat`) and their
overlaps summed per bin (`np.add.reduceat` over the sorted bin sequence).

Bad input raises `PeakError` (a ValueError) with a one-line message naming the file and line or value.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PEAK_SUFFIXES = (".bed", ".narrowpeak", ".broadpeak", ".bed.gz", ".narrowpeak.gz", ".broadpeak.gz")
HEADER_PREFIXES = ("track", "browser", "#")


class PeakError(ValueError):
    """A peak sheet, peak file or blacklist that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class PeakFile:
    name: str  # the label
    path: Path
    group: str = ""  # e.g. the assay or cell type; "" = no group


@dataclass(frozen=True)
class Intervals:
    """Intervals of one file: `chrom (n,) int32` (index into the genome's chromosomes), `start`/`end (n,) int64`."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray


# --- reading -----------------------------------------------------------------------------------------------------


def read_sheet(spec: Path) -> list[PeakFile]:
    """`spec`: a TSV sheet with columns `name`, `path` (relative to the sheet) and optional `group`, or a folder
    whose BED/narrowPeak files (gzip allowed) are one label each, named by the file stem."""
    if spec.is_dir():
        files = sorted(p for p in spec.iterdir() if p.is_file() and p.name.lower().endswith(PEAK_SUFFIXES))
        if not files:
            raise PeakError(f"{spec}: no peak files (*.bed, *.narrowPeak, *.broadPeak, optionally .gz) in the folder")
        return [PeakFile(_stem(p), p) for p in files]
    if not spec.is_file():
        raise PeakError(f"data.peaks={spec}: no such file or folder")
    lines = [line for line in spec.read_text().splitlines() if line.strip()]
    if not lines:
        raise PeakError(f"{spec}: empty peak sheet (expected a header with name, path[, group])")
    header = lines[0].split("\t")
    missing = [c for c in ("name", "path") if c not in header]
    if missing:
        raise PeakError(
            f"{spec}:1: header {header} lacks column(s) {', '.join(missing)} (expected name, path[, group])"
        )
    col = {c: header.index(c) for c in ("name", "path", "group") if c in header}
    out: list[PeakFile] = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) < len(header):
            raise PeakError(f"{spec}:{number}: {len(fields)} columns, the header has {len(header)}")
        path = Path(fields[col["path"]]).expanduser()
        path = path if path.is_absolute() else spec.parent / path
        if not path.is_file():
            raise PeakError(f"{spec}:{number}: peak file {path} does not exist")
        out.append(PeakFile(fields[col["name"]], path, fields[col["group"]] if "group" in col else ""))
    names = [p.name for p in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise PeakError(f"{spec}: duplicate label name(s) {', '.join(duplicated)}")
    if not out:
        raise PeakError(f"{spec}: the sheet lists no peak files")
    return out


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return name.rsplit(".", 1)[0]


def read_text(path: Path) -> str:
    """The file's text; a `.gz` that is not gzip raises PeakError naming it."""
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        if raw[:2] != b"\x1f\x8b":
            raise PeakError(f"{path}: named .gz but is not gzip-compressed")
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise PeakError(f"{path}: broken gzip data ({err})") from None
    return raw.decode("latin-1")


def read_bed(path: Path, chrom_index: Mapping[str, int], genome: str) -> Intervals:
    """The first three columns of a BED/narrowPeak file (header lines `track`/`browser`/`#` skipped), chromosome
    names mapped through `chrom_index`. Unsorted and overlapping lines are fine."""
    import pandas as pd

    text = read_text(path)
    lines = text.splitlines()
    skip = 0
    while skip < len(lines) and (not lines[skip].strip() or lines[skip].startswith(HEADER_PREFIXES)):
        skip += 1
    if skip == len(lines):
        raise PeakError(f"{path}: empty peak file (no intervals)")
    try:
        frame = pd.read_csv(io.StringIO(text), sep="\t", header=None, skiprows=skip, usecols=[0, 1, 2],
                            dtype={0: str}, engine="c", skip_blank_lines=False)  # fmt: skip
        ok = all(frame[c].dtype.kind == "i" for c in (1, 2)) and not frame[0].isna().any()
    except (ValueError, pd.errors.ParserError):
        ok = False
    if ok:
        start, end = frame[1].to_numpy(np.int64), frame[2].to_numpy(np.int64)
        ok = bool(np.all(end > start) and np.all(start >= 0))
    if not ok:
        raise first_bad_line(path, lines, skip)
    inverse, names = pd.factorize(frame[0])
    unknown = sorted(n for n in names.tolist() if n not in chrom_index)
    if unknown:
        known = list(chrom_index)
        hint = ""
        if any(("chr" + n) in chrom_index or n.removeprefix("chr") in chrom_index for n in unknown):
            hint = " (the genome names chromosomes differently: 'chr1' vs '1'?)"
        raise PeakError(f"{path}: chromosome(s) {', '.join(unknown[:5])} not in the genome {genome}, which has "
                        f"{', '.join(known[:5])}{', ...' if len(known) > 5 else ''}{hint}")  # fmt: skip
    codes = np.array([chrom_index[n] for n in names.tolist()], dtype=np.int32)
    return Intervals(codes[inverse], start, end)


def first_bad_line(path: Path, lines: Sequence[str], skip: int) -> PeakError:
    """The PeakError for the first malformed line (called only once the fast reader has failed)."""
    for number in range(skip, len(lines)):
        fields = lines[number].split("\t")
        where = f"{path}:{number + 1}"
        if len(fields) < 3:
            return PeakError(f"{where}: {len(fields)} column(s), a peak line needs chrom, start, end")
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            return PeakError(f"{where}: coordinates {fields[1]!r}, {fields[2]!r} are not integers")
        if start < 0 or end <= start:
            return PeakError(f"{where}: start {start}, end {end}: need 0 <= start < end")
        if not fields[0]:
            return PeakError(f"{where}: empty chromosome name")
    return PeakError(f"{path}: unreadable as a tab-separated peak file")


# --- bins --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinLayout:
    """Global numbering of the whole `bin`-bp bins of chromosomes `names` with `sizes`."""

    names: tuple[str, ...]
    sizes: np.ndarray  # (n_chrom,) int64
    bin: int

    @property
    def n_bins(self) -> np.ndarray:
        """`(n_chrom,)` whole bins per chromosome."""
        return self.sizes // self.bin

    @property
    def bin_offset(self) -> np.ndarray:
        """`(n_chrom + 1,)` first global bin of each chromosome (and the total)."""
        return np.concatenate([[0], np.cumsum(self.n_bins)]).astype(np.int64)

    @property
    def pos_offset(self) -> np.ndarray:
        return self.bin_offset[:-1] * self.bin

    def to_global(self, iv: Intervals) -> tuple[np.ndarray, np.ndarray]:
        """Global `(start, end)` of intervals clipped to their chromosome's whole bins (empty ones dropped)."""
        limit = self.n_bins[iv.chrom] * self.bin
        start, end = np.minimum(iv.start, limit), np.minimum(iv.end, limit)
        keep = end > start
        offset = self.pos_offset[iv.chrom[keep]]
        return start[keep] + offset, end[keep] + offset

    def chrom_of(self, bins: np.ndarray) -> np.ndarray:
        """`(n,)` chromosome index of global bins."""
        return (np.searchsorted(self.bin_offset, bins, side="right") - 1).astype(np.int32)

    def local_start(self, bins: np.ndarray) -> np.ndarray:
        """`(n,)` 0-based start of global bins on their chromosome."""
        return (bins - self.bin_offset[self.chrom_of(bins)]) * self.bin

    def ids(self, bins: np.ndarray) -> np.ndarray:
        """`(n,)` `chrom:start-end` of global bins."""
        chrom = np.asarray(self.names, dtype=object)[self.chrom_of(bins)]
        start = self.local_start(bins)
        return np.array([f"{c}:{s}-{s + self.bin}" for c, s in zip(chrom, start.tolist(), strict=True)], dtype=object)


def merge_intervals(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals (any order, overlapping allowed) as sorted disjoint `(start, end)`."""
    if start.size == 0:
        return start, end
    order = np.argsort(start, kind="stable")
    s, e = start[order], end[order]
    reach = np.maximum.accumulate(e)
    first = np.concatenate([[True], s[1:] > reach[:-1]])
    heads = np.flatnonzero(first)
    return s[heads], np.maximum.reduceat(e, heads)


def bin_overlaps(start: np.ndarray, end: np.ndarray, bin_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted disjoint global intervals → `(bins, covered bp)` of every bin they touch, bins sorted and unique."""
    if start.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first, last = start // bin_size, (end - 1) // bin_size
    counts = last - first + 1
    which = np.repeat(np.arange(start.size), counts)
    step = np.arange(which.size) - np.repeat(np.cumsum(counts) - counts, counts)
    bins = first[which] + step
    covered = np.minimum(end[which], (bins + 1) * bin_size) - np.maximum(start[which], bins * bin_size)
    heads = np.flatnonzero(np.concatenate([[True], bins[1:] != bins[:-1]]))
    return bins[heads], np.add.reduceat(covered, heads)


def positive_bins(layout: BinLayout, iv: Intervals, min_overlap: float) -> np.ndarray:
    """Sorted global bins with at least `min_overlap × bin` bp inside the merged intervals `iv`."""
    bins, covered = bin_overlaps(*merge_intervals(*layout.to_global(iv)), layout.bin)
    return bins[covered >= min_overlap * layout.bin]


def label_bins(layout: BinLayout, peaks: Sequence[Intervals], min_overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """`(bins (P,) int64 sorted, labels (P, C) uint8)`: the bins positive for at least one of the C peak sets (their
    union through a bool mask over all bins, then a row number per bin: no sort or hash of the hits)."""
    per_label = [positive_bins(layout, iv, min_overlap) for iv in peaks]
    hit = np.zeros(int(layout.bin_offset[-1]), dtype=bool)
    for hits in per_label:
        hit[hits] = True
    bins = np.flatnonzero(hit)
    row = np.cumsum(hit, dtype=np.int64) - 1  # (n_bins,) row of each positive bin
    del hit
    labels = np.zeros((bins.size, len(peaks)), dtype=np.uint8)
    for j, hits in enumerate(per_label):
        labels[row[hits], j] = 1
    return bins, labels


def sample_negatives(layout: BinLayout, allowed: np.ndarray, excluded: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` distinct global bins drawn uniformly (seeded) from the chromosomes `allowed` (bool per chromosome),
    avoiding the sorted `excluded` bins; sorted. Raises PeakError when there are too few."""
    sizes = np.where(allowed, layout.n_bins, 0)
    pool = int(sizes.sum()) - int(np.isin(layout.chrom_of(excluded), np.flatnonzero(allowed)).sum())
    if n > pool:
        raise PeakError(f"data.negatives asks for {n} negative bins but only {pool} bins are free of peaks")
    cum = np.concatenate([[0], np.cumsum(sizes)])
    rng = np.random.default_rng(seed)
    chosen = np.zeros(0, np.int64)
    while chosen.size < n:
        draw = rng.integers(0, cum[-1], size=2 * (n - chosen.size) + 16)
        chrom = np.searchsorted(cum, draw, side="right") - 1
        bins = layout.bin_offset[chrom] + draw - cum[chrom]
        chosen = np.unique(np.concatenate([chosen, bins[~np.isin(bins, excluded)]]))
    return np.sort(rng.choice(chosen, size=n, replace=False)) if chosen.size > n else chosen
