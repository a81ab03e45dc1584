"""Genomic Benchmarks datasets built from their interval lists and a local genome FASTA (no download).

What the package's `loc2seq.download_dataset` does when its cloud cache is not used, read with pyfaidx instead of
loading the whole genome into memory. An interval folder (GB's `datasets/<name>/`) holds `metadata.yaml`
(`version`, and per class the reference `url`, `type`, `extra_processing`) and `{train,test}/<class>.csv.gz` with
columns `id, region, start, end, strand`: 0-based, end exclusive, `-` = reverse complement.

Rows come out in the order regbench reads the package's one-file-per-sequence folder back
(`_genomic_benchmarks._read_folder`): train then test, positive then negative, ids sorted as the file names
`<id>.txt`, ids `split/class/id`. So the cache holds the same arrays as one built from the package's own output on
the same genome (`tests/test_gb_intervals.py` runs both). Differences from the package, each an error or stated
here: a region missing from the genome or an interval past its end is an error naming the interval (the package
raises for the first and silently shortens the second); soft-masked lower case becomes upper case (as regbench's
reader does); IUPAC ambiguity codes become N (the package writes them, regbench's reader rejects them).

Chromosome names are matched as written (`chr1`, as in UCSC hg38.fa) or, where the metadata names an Ensembl
genome (`extra_processing: ENSEMBL_HUMAN_GENOME`: the package reads Ensembl's `1`, ..., `MT` and prefixes `chr`),
without the `chr` prefix, so both UCSC hg38 and the Ensembl GRCh38 FASTA work (same primary assembly).
The counts per split must equal the published ones (Grešová et al. 2023, BMC Genomic Data 24:25, Table 1; the
metadata states none). The result is cached as `cache_dir()/gb_<name>_intervals_<digest>.npz` (digest of the
folder and genome paths), rebuilt when the size or modification time of a list, the metadata or the genome changes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.datasets import SeqDataset
from harness.paths import DataNotFoundError, cache_dir, data_root
from tasks._genomic_benchmarks import CLASSES, OFFICIAL_SPLITS, read_cache, stored_stamp, write_cache

# train, test rows per dataset (Grešová et al. 2023, Table 1; the totals match the dataset READMEs in GB's docs/)
PUBLISHED_COUNTS = {
    "human_enhancers_ensembl": {"train": 123_872, "test": 30_970},
    "human_enhancers_cohn": {"train": 20_843, "test": 6_948},
    "human_nontata_promoters": {"train": 27_097, "test": 9_034},
}
COLUMNS = ("id", "region", "start", "end", "strand")
GB_DATASETS_URL = "https://github.com/ML-Bioinfo-CEITEC/genomic_benchmarks/tree/main/datasets"
HG38_HINT = (
    "Download GRCh38: UCSC https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips/hg38.fa.gz or the Ensembl FASTA "
    "named in the dataset's metadata.yaml ({url}); gunzip it (pyfaidx indexes it on first use, writing <genome>.fai "
    "beside it) and pass --set data.genome=/path/hg38.fa"
)
_SOURCE = b"ACGTNacgtnRYKMSWBDHVryksmwbdhv"
_CODES = np.full(256, 255, dtype=np.uint8)  # byte → base code; 255 = not a base
_CODES[np.frombuffer(_SOURCE, dtype=np.uint8)] = np.array([0, 1, 2, 3, 4] * 2 + [4] * 20, dtype=np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)
_INVALID = 255


class IntervalError(ValueError):
    """An interval does not fit the genome (unknown region, or outside the chromosome); the message names both."""


@dataclass(frozen=True)
class Interval:
    """One row of an interval list; `where` names it for errors (file, line, id)."""

    id: str
    region: str
    start: int
    end: int
    strand: str
    where: str

    def describe(self) -> str:
        return f"{self.where}: interval id {self.id} {self.region}:{self.start}-{self.end} ({self.strand})"


def find_intervals(name: str, given: str) -> Path:
    """The interval folder of dataset `name`: `given` (data.intervals), else `$REGBENCH_DATA/genomic_benchmarks/
    <name>_intervals`, else the package's own copy (present when installed from a source checkout)."""
    from genomic_benchmarks.utils.paths import DATASET_DIR_PATH  # light module: pathlib + yarl only

    if given:
        folder = Path(given).expanduser()
        if not (folder / "metadata.yaml").is_file():
            raise DataNotFoundError(
                f"data.intervals={given}: no {folder / 'metadata.yaml'}; expected GB's interval folder layout "
                f"metadata.yaml + {{train,test}}/{{positive,negative}}.csv.gz (as in {GB_DATASETS_URL}/{name})"
            )
        return folder
    root = data_root()
    candidates = ([root / "genomic_benchmarks" / f"{name}_intervals"] if root else []) + [Path(DATASET_DIR_PATH) / name]
    for folder in candidates:
        if (folder / "metadata.yaml").is_file():
            return folder
    raise DataNotFoundError(
        f"interval lists of {name!r} not found (looked in {', '.join(map(str, candidates))}; the pip package ships "
        f"none). Get the folder {GB_DATASETS_URL}/{name} (metadata.yaml, train/, test/) and pass "
        "--set data.intervals=/path/to/it"
    )


def read_metadata(folder: Path, name: str) -> dict:
    """`metadata.yaml` of an interval folder, checked: version 0 (what regbench's GB tasks use), classes
    positive and negative."""
    import yaml

    path = folder / "metadata.yaml"
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read metadata ({err})") from err
    classes = sorted((meta or {}).get("classes") or {}) if isinstance(meta, dict) else []
    if classes != sorted(c for c, _ in CLASSES):
        raise ValueError(f"{path}: classes {classes} for {name}, expected negative and positive")
    if meta.get("version") != 0:
        raise ValueError(f"{path}: version {meta.get('version')!r} for {name}, expected 0")
    return meta


def read_intervals(path: Path) -> list[Interval]:
    """Rows of one gzipped interval list, sorted as the package's file names `<id>.txt` sort."""
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing (an interval folder holds {{train,test}}/<class>.csv.gz)")
    try:
        with gzip.open(path, "rt", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if sorted(header) != sorted(COLUMNS):
                raise ValueError(f"{path}: columns {header}, expected {', '.join(COLUMNS)}")
            col = {c: header.index(c) for c in COLUMNS}
            rows = [_interval(path, line, fields, col) for line, fields in enumerate(reader, start=2)]
    except (OSError, EOFError, gzip.BadGzipFile, csv.Error) as err:
        raise ValueError(f"{path}: cannot read the interval list ({err})") from err
    return sorted(rows, key=lambda r: f"{r.id}.txt")


def _interval(path: Path, line: int, fields: list[str], col: dict[str, int]) -> Interval:
    where = f"{path} line {line}"
    if len(fields) != len(COLUMNS):
        raise ValueError(f"{where}: {len(fields)} fields, expected {len(COLUMNS)} ({', '.join(COLUMNS)})")
    try:
        start, end = int(fields[col["start"]]), int(fields[col["end"]])
    except ValueError as err:
        raise ValueError(f"{where}: start/end must be integers ({err})") from err
    row = Interval(fields[col["id"]], fields[col["region"]], start, end, fields[col["strand"]], where)
    if row.strand not in ("+", "-"):
        raise ValueError(f"{row.describe()}: strand must be + or -")
    return row


def strips_chr(processing: str | None) -> bool:
    """Whether regions may match genome names without the `chr` prefix (the package's Ensembl genomes)."""
    return bool(processing) and processing in ("ENSEMBL_HUMAN_GENOME", "ENSEMBL_MOUSE_GENOME")


def cut(fasta: Any, genome: Path, row: Interval, strip_chr: bool) -> np.ndarray:
    """Base codes `(end - start,)` of one interval (reverse-complemented on `-`) from a pyfaidx `Fasta`;
    raises IntervalError naming the interval and the genome."""
    name = row.region
    if name not in fasta and strip_chr and name.startswith("chr") and name[3:] in fasta:
        name = name[3:]
    if name not in fasta:
        some = ", ".join(list(fasta.keys())[:5])
        raise IntervalError(f"{row.describe()}: region {row.region!r} is not in genome {genome} (it has {some}, …)")
    size = len(fasta[name])
    if not 0 <= row.start < row.end <= size:
        raise IntervalError(
            f"{row.describe()}: outside {row.region} of genome {genome} (length {size}); "
            "need 0 <= start < end <= length — is it the genome the lists were made on (GRCh38)?"
        )
    raw = np.frombuffer(fasta[name][row.start : row.end].encode("latin-1"), dtype=np.uint8)
    codes = _CODES[raw]
    if (codes == _INVALID).any():
        bad = chr(int(raw[codes == _INVALID][0]))
        raise IntervalError(f"{row.describe()}: genome {genome} holds {bad!r} there, not a base (ACGTN or IUPAC)")
    return _COMPLEMENT[codes[::-1]] if row.strand == "-" else codes


def build(folder: Path, meta: dict, genome: Path, name: str) -> dict[str, np.ndarray]:
    """Interval folder (its `meta`data read) + genome → the flat arrays `_genomic_benchmarks.write_cache` stores."""
    import pyfaidx

    try:
        fasta = pyfaidx.Fasta(str(genome), as_raw=True, sequence_always_upper=False, rebuild=False)
    except (OSError, pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat) as err:
        raise ValueError(f"genome {genome}: cannot index it with pyfaidx ({err}); gunzip a .fa.gz first") from err
    lists = {(s, c): read_intervals(folder / s / f"{c}.csv.gz") for s in OFFICIAL_SPLITS for c, _ in CLASSES}
    counts = {s: sum(len(rows) for (split, _), rows in lists.items() if split == s) for s in OFFICIAL_SPLITS}
    expected = PUBLISHED_COUNTS.get(name)
    if expected is not None and counts != expected:
        raise ValueError(
            f"{folder}: {counts} intervals per split, but {name} has {expected} (published counts): "
            "incomplete or different interval lists"
        )
    codes: list[np.ndarray] = []
    try:
        for (_, cls), rows in lists.items():
            strip_chr = strips_chr(meta["classes"][cls].get("extra_processing"))
            codes += [cut(fasta, genome, row, strip_chr) for row in rows]
    finally:
        fasta.close()
    labels = dict(CLASSES)
    return {
        "codes": np.concatenate(codes) if codes else np.zeros(0, np.uint8),
        "lengths": np.fromiter((len(c) for c in codes), dtype=np.int32, count=len(codes)),
        "labels": np.concatenate([np.full(len(rows), labels[c], np.int8) for (_, c), rows in lists.items()]),
        "split": np.concatenate(
            [np.full(len(rows), OFFICIAL_SPLITS.index(s), np.int8) for (s, _), rows in lists.items()]
        ),
        "ids": np.asarray([f"{s}/{c}/{r.id}" for (s, c), rows in lists.items() for r in rows], dtype=np.bytes_),
    }


def require_genome(path: str, url: str) -> Path:
    """The genome FASTA at `path`, or a DataNotFoundError saying where to download GRCh38."""
    genome = Path(path).expanduser()
    if not genome.is_file():
        raise DataNotFoundError(f"genome FASTA {genome} (data.genome) does not exist. {HG38_HINT.format(url=url)}")
    return genome


def cache_path(name: str, folder: Path, genome: Path) -> Path:
    key = hashlib.sha256(f"{folder.resolve()}|{genome.resolve()}".encode()).hexdigest()[:12]
    return cache_dir() / f"gb_{name}_intervals_{key}.npz"


def stamp(folder: Path, genome: Path) -> str:
    """Size and modification time of the metadata, the four lists and the genome."""
    files = [folder / "metadata.yaml", *(folder / s / f"{c}.csv.gz" for s in OFFICIAL_SPLITS for c, _ in CLASSES)]
    parts = []
    for path in [*files, genome]:
        st = path.stat() if path.exists() else None
        parts.append(f"{path.name}={st.st_size}:{st.st_mtime_ns}" if st else f"{path.name}=missing")
    return ";".join(parts)


def load_from_intervals(name: str, intervals: str, genome_path: str) -> dict[str, SeqDataset]:
    """The official `{"train", "test"}` splits of `name`, built from its interval lists on `genome_path`."""
    folder = find_intervals(name, intervals)
    meta = read_metadata(folder, name)
    genome = require_genome(genome_path, meta["classes"]["positive"].get("url", "?"))
    cache, current = cache_path(name, folder, genome), stamp(folder, genome)
    if not (cache.exists() and stored_stamp(cache) == current):
        write_cache(cache, build(folder, meta, genome, name), current)
    return read_cache(cache)
