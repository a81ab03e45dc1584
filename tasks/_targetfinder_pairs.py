"""TargetFinder enhancer–promoter pair tables: `enhancer_name,promoter_name,label[,prediction]` (gzip CSV or plain).

Names carry coordinates, `CELL|chrN:start-end` (hg19, BED-style: 0-based start, end exclusive). `prediction` is
TargetFinder's own 10-fold CV prediction (optional). Every error names the file, the line and the value.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.paths import DataNotFoundError

NAME = re.compile(r"^(?P<cell>[^|]+)\|(?P<chrom>[^:|\s]+):(?P<start>\d+)-(?P<end>\d+)$")
REQUIRED = ("enhancer_name", "promoter_name", "label")


class PairTableError(ValueError):
    """A malformed pair table; the message names the file, the line and the value."""


@dataclass(frozen=True)
class Elements:
    """Genomic elements (one per pair row): chromosome, BED start/end, and the element names."""

    names: np.ndarray  # (N,) str
    chrom: np.ndarray  # (N,) str
    start: np.ndarray  # (N,) int64
    end: np.ndarray  # (N,) int64

    @property
    def mid(self) -> np.ndarray:
        """Midpoint `(start + end) // 2` of each element."""
        return (self.start + self.end) // 2

    def subset(self, idx: np.ndarray) -> Elements:
        return Elements(self.names[idx], self.chrom[idx], self.start[idx], self.end[idx])


@dataclass(frozen=True)
class PairTable:
    """A parsed pair table; `lines` are the 1-based file lines of the rows (for error messages)."""

    path: Path
    enhancers: Elements
    promoters: Elements
    labels: np.ndarray  # (N,) int8
    prediction: np.ndarray | None  # (N,) int8 when the file has a prediction column
    lines: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def ids(self) -> np.ndarray:
        """`enhancer_name::promoter_name` per row."""
        return np.char.add(np.char.add(self.enhancers.names.astype(str), "::"), self.promoters.names.astype(str))

    def subset(self, idx: np.ndarray) -> PairTable:
        pred = None if self.prediction is None else self.prediction[idx]
        return PairTable(
            self.path, self.enhancers.subset(idx), self.promoters.subset(idx), self.labels[idx], pred, self.lines[idx]
        )

    def where(self, row: int) -> str:
        """`file:line (enhancer, promoter)` of a row, for error messages."""
        return f"{self.path}:{self.lines[row]} ({self.enhancers.names[row]}, {self.promoters.names[row]})"

    def digest(self) -> str:
        """Content digest of the file."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def parse_name(name: str, where: str) -> tuple[str, int, int]:
    """`CELL|chrN:start-end` → `(chrom, start, end)`; a PairTableError naming `where` and the value otherwise."""
    match = NAME.match(name)
    if not match:
        raise PairTableError(f"{where}: malformed element name {name!r} (expected CELL|chrN:start-end)")
    start, end = int(match["start"]), int(match["end"])
    if end <= start:
        raise PairTableError(f"{where}: element {name!r} has end {end} <= start {start}")
    return match["chrom"], start, end


def _open(path: Path):
    with path.open("rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", newline="") if gzipped else path.open(newline="")


def read_pairs(path: Path) -> PairTable:
    """Parse a TargetFinder pair table (gzip or plain CSV with a header)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"pair table {path} does not exist")
    cols: dict[str, list] = {k: [] for k in ("e", "p", "label", "pred", "line")}
    elements: dict[str, list] = {k: [] for k in ("ec", "es", "ee", "pc", "ps", "pe")}
    with _open(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise PairTableError(f"{path}: file is empty")
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise PairTableError(f"{path}:1: header {header!r} lacks column(s) {', '.join(missing)}")
        ie, ip, il = (header.index(c) for c in REQUIRED)
        ipred = header.index("prediction") if "prediction" in header else None
        for row in reader:
            line = reader.line_num
            if not row or not any(field.strip() for field in row):
                continue
            if len(row) != len(header):
                raise PairTableError(f"{path}:{line}: expected {len(header)} columns, found {len(row)}: {row!r}")
            where = f"{path}:{line}"
            for key, col in (("e", ie), ("p", ip)):
                chrom, start, end = parse_name(row[col], where)
                elements[f"{key}c"].append(chrom)
                elements[f"{key}s"].append(start)
                elements[f"{key}e"].append(end)
                cols[key].append(row[col])
            cols["label"].append(_binary(row[il], "label", where))
            if ipred is not None:
                cols["pred"].append(_binary(row[ipred], "prediction", where))
            cols["line"].append(line)
    if not cols["label"]:
        raise PairTableError(f"{path}: no data rows")
    return PairTable(
        path,
        Elements(
            np.asarray(cols["e"]), np.asarray(elements["ec"]), np.asarray(elements["es"]), np.asarray(elements["ee"])
        ),
        Elements(
            np.asarray(cols["p"]), np.asarray(elements["pc"]), np.asarray(elements["ps"]), np.asarray(elements["pe"])
        ),
        np.asarray(cols["label"], dtype=np.int8),
        np.asarray(cols["pred"], dtype=np.int8) if ipred is not None else None,
        np.asarray(cols["line"], dtype=np.int64),
    )


def _binary(value: str, column: str, where: str) -> int:
    if value.strip() not in ("0", "1"):
        raise PairTableError(f"{where}: bad {column} {value!r} (expected 0 or 1)")
    return int(value)
