"""Fixed-width windows cut from a genome FASTA with pyfaidx, cached as `.npz`.

Convention: a window of width W around an element is `[mid - W // 2, mid - W // 2 + W)` with `mid = (start + end)
// 2` (0-based, end exclusive), read on the + strand (TargetFinder elements are unstranded), upper-cased; soft-masked
bases become upper case, IUPAC ambiguity codes become N, and positions before 0 or past the chromosome end are N.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from harness.data.datasets import Seqs
from harness.paths import DataNotFoundError, cache_dir

HG19_HINT = (
    "EPI tasks cut sequences from the hg19 reference genome. Download it from UCSC "
    "(https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips/hg19.fa.gz), gunzip it (pyfaidx indexes it on first "
    "use) and pass --set data.genome=/path/hg19.fa"
)
_TO_ACGTN = bytes.maketrans(b"acgtn", b"ACGTN")
_VALID = frozenset(b"ACGTN")


class GenomeError(LookupError):
    """The genome lacks a chromosome a pair needs; the message names the chromosome and the pair."""


def require_genome(path: str) -> Path:
    """The FASTA at `path`, or a DataNotFoundError explaining how to obtain hg19."""
    if not path:
        raise DataNotFoundError(f"no genome given (data.genome is empty). {HG19_HINT}")
    genome = Path(path).expanduser()
    if not genome.is_file():
        raise DataNotFoundError(f"genome FASTA {genome} does not exist. {HG19_HINT}")
    return genome


def genome_digest(path: Path) -> str:
    """A cheap identity of a genome file: name, size and modification time."""
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def window_starts(mid: np.ndarray, width: int) -> np.ndarray:
    """Left edges of width-`width` windows centred on `mid`."""
    return np.asarray(mid, dtype=np.int64) - width // 2


def _clean(raw: str) -> str:
    data = raw.encode("latin-1").translate(_TO_ACGTN)
    if not _VALID.issuperset(data):
        data = bytes(b if b in _VALID else 78 for b in data)  # 78 = "N"
    return data.decode("latin-1")


def cut_windows(genome: Path, chrom: np.ndarray, start: np.ndarray, width: int, where: list[str]) -> Seqs:
    """Windows `[start, start + width)` on the + strand, padded with N outside the chromosome.

    `where[i]` describes row i (e.g. its pair) for the error raised when `chrom[i]` is not in the genome.
    """
    import pyfaidx

    fasta = pyfaidx.Fasta(str(genome), as_raw=True, sequence_always_upper=False, rebuild=False)
    try:
        seqs = []
        for i, (c, s) in enumerate(zip(chrom.astype(str).tolist(), start.tolist(), strict=True)):
            if c not in fasta:
                raise GenomeError(f"chromosome {c!r} is not in {genome} (needed by {where[i]})")
            size = len(fasta[c])
            lo, hi = max(int(s), 0), min(int(s) + width, size)
            body = _clean(fasta[c][lo:hi]) if hi > lo else ""
            left = min(max(-int(s), 0), width)
            seqs.append("N" * left + body + "N" * (width - left - len(body)))
    finally:
        fasta.close()
    return Seqs.from_strings(seqs, pad_to=width)


def cached_windows(genome: Path, chrom: np.ndarray, start: np.ndarray, width: int, where: list[str], key: str) -> Seqs:
    """`cut_windows`, cached in `cache_dir()/epi_windows/` under the genome digest, `key` and the width."""
    digest = hashlib.sha256(f"{genome_digest(genome)}:{key}:{width}".encode()).hexdigest()[:20]
    path = cache_dir() / "epi_windows" / f"{digest}.npz"
    if path.exists():
        with np.load(path) as cached:
            return Seqs(cached["codes"], cached["lengths"])
    seqs = cut_windows(genome, chrom, start, width, where)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, codes=seqs.codes, lengths=seqs.lengths)
    tmp.replace(path)
    return seqs
