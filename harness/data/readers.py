"""Readers for labelled DNA files: FASTA and `sequence<TAB>label` TSV.

Every error names the file, the line (and FASTA record) and the offending value. Sequences come back
upper-cased; only A, C, G, T, N are accepted. Accepted as their clean forms: CRLF line ends, lower case, FASTA
wrapped over several lines, a UTF-8 byte-order mark, blank lines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.paths import input_file

_INVALID = re.compile(r"[^ACGTNacgtn]")
LABELS = {"0": 0, "1": 1}


class SequenceFileError(ValueError):
    """A malformed sequence file; the message names the file, line or record, and the value."""


@dataclass(frozen=True)
class Labeled:
    """Sequences with labels `(N,)` (int8 0/1, or float32 values when `target` is `regression`) and ids `(N,) str`
    (unique within one source)."""

    seqs: list[str]
    labels: np.ndarray
    ids: np.ndarray
    target: str = "binary"


_BOM = "\xef\xbb\xbf"  # the UTF-8 byte-order mark as read in latin-1


def check_file(path: Path, what: str = "sequence file") -> Path:
    """A readable, non-empty file, or a clear error naming the path (`harness.paths.input_file`)."""
    path = input_file(path, what)
    if path.stat().st_size == 0:
        raise SequenceFileError(f"{path}: file is empty")
    return path


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """`(line number, line without its line end)`, a leading byte-order mark dropped; a read error (e.g. a file
    that turns unreadable) raises a SequenceFileError naming the file."""
    try:
        with path.open(encoding="latin-1", newline="") as handle:
            for lineno, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                yield lineno, line.removeprefix(_BOM) if lineno == 1 else line
    except OSError as err:
        raise SequenceFileError(f"{path}: cannot be read ({err.strerror or err})") from None


def invalid_char(seq: str) -> tuple[int, str] | None:
    """`(0-based position, character)` of the first non-ACGTN character, or None."""
    match = _INVALID.search(seq)
    return (match.start(), match.group()) if match else None


def read_fasta(path: Path) -> list[tuple[str, str]]:
    """`[(record id, sequence)]` in file order; the id is the header up to the first whitespace."""
    path = check_file(path, "FASTA file")
    records: list[tuple[str, str]] = []
    rid, header_line, parts = None, 0, []
    for lineno, raw in numbered_lines(path):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(">"):
            if rid is not None:
                records.append(_finish(path, rid, header_line, parts))
            fields = line[1:].split()
            if not fields:
                raise SequenceFileError(f"{path}:{lineno}: FASTA header {line!r} has no record id")
            rid, header_line, parts = fields[0], lineno, []
            continue
        if rid is None:
            raise SequenceFileError(
                f"{path}:{lineno}: sequence line before any '>' header (truncated or not FASTA?): {line[:60]!r}"
            )
        bad = invalid_char(line)
        if bad:
            raise SequenceFileError(
                f"{path}:{lineno}: record {rid!r}: invalid character {bad[1]!r} at column {bad[0] + 1} "
                "(only A, C, G, T, N are allowed)"
            )
        parts.append(line)
    if rid is None:
        raise SequenceFileError(f"{path}: no FASTA records found (only blank lines)")
    records.append(_finish(path, rid, header_line, parts))
    return records


def _finish(path: Path, rid: str, header_line: int, parts: list[str]) -> tuple[str, str]:
    if not parts:
        raise SequenceFileError(f"{path}:{header_line}: record {rid!r} has a header but no sequence (truncated file?)")
    return rid, "".join(parts).upper()


def read_tsv(path: Path, target: str = "binary") -> Labeled:
    """Rows `sequence<TAB>label`; a first line that is not a data row (e.g. `sequence<TAB>label`) is a header.

    `target`: `binary` (labels 0 or 1), `regression` (labels finite numbers) or `auto` (regression when some label
    is a number other than 0 and 1). A label that is text, NaN or infinite is an error naming its line."""
    path = check_file(path, "TSV file")
    seqs: list[str] = []
    labels: list[float] = []
    ids: list[str] = []
    first = True
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise SequenceFileError(
                f"{path}:{lineno}: expected 2 tab-separated columns (sequence<TAB>label), found {len(fields)}: "
                f"{line[:60]!r}"
            )
        seq, label = fields[0].strip(), fields[1].strip()
        is_header = first and _is_header(seq, label)
        first = False
        if is_header:
            continue
        if not seq:
            raise SequenceFileError(f"{path}:{lineno}: empty sequence")
        bad = invalid_char(seq)
        if bad:
            raise SequenceFileError(
                f"{path}:{lineno}: invalid character {bad[1]!r} at position {bad[0] + 1} of the sequence "
                "(only A, C, G, T, N are allowed)"
            )
        seqs.append(seq.upper())
        labels.append(_label(path, lineno, label, target))
        ids.append(f"{path.name}:{lineno}")
    if not seqs:
        raise SequenceFileError(f"{path}: no data rows (expected lines sequence<TAB>label)")
    values = np.asarray(labels)
    if target == "regression" or (target == "auto" and not np.isin(values, (0, 1)).all()):
        return Labeled(seqs, values.astype(np.float32), np.asarray(ids), "regression")
    return Labeled(seqs, values.astype(np.int8), np.asarray(ids))


def _number(text: str) -> float | None:
    """`text` as a float (ASCII digits only), or None."""
    try:
        return float(text) if text.isascii() else None
    except ValueError:
        return None


def _label(path: Path, lineno: int, text: str, target: str) -> float:
    """One label of a TSV (see `read_tsv`), or a SequenceFileError naming `path:lineno` and the value."""
    if target == "binary":
        if text not in LABELS:
            raise SequenceFileError(f"{path}:{lineno}: bad label {text!r} (expected 0 or 1)")
        return LABELS[text]
    value = _number(text)
    if value is None:
        raise SequenceFileError(f"{path}:{lineno}: bad label {text!r} (not a number: the label column mixes "
                                "numbers and text)")  # fmt: skip
    if not np.isfinite(value):
        raise SequenceFileError(f"{path}:{lineno}: bad label {text!r} (not a finite number: drop or fill this row)")
    return value


def _is_header(seq: str, label: str) -> bool:
    return _number(label) is None and invalid_char(seq) is not None


def read_fasta_classes(pairs: list[tuple[int, Path]]) -> Labeled:
    """FASTA files, one per class: `[(label, path), ...]` → all records, labelled, ids the records' own (their
    headers up to the first space); a record id that occurs more than once becomes `file:record` so ids stay
    unique."""
    seqs: list[str] = []
    labels: list[int] = []
    records: list[tuple[str, str]] = []  # (file name, record id)
    for label, path in pairs:
        for rid, seq in read_fasta(path):
            seqs.append(seq)
            labels.append(label)
            records.append((Path(path).name, rid))
    counts = Counter(rid for _, rid in records)
    ids = [rid if counts[rid] == 1 else f"{name}:{rid}" for name, rid in records]
    return Labeled(seqs, np.asarray(labels, dtype=np.int8), np.asarray(ids))


def read_source(spec: str, target: str = "binary") -> Labeled:
    """A user data source: a TSV path, or comma-separated FASTA `label:path` pairs (`1:pos.fa,0:neg.fa`); `target`
    as `read_tsv` has it (FASTA classes under `regression` become the values 0.0 and 1.0)."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise SequenceFileError(f"empty data source {spec!r}: give a TSV path or label:path FASTA pairs")
    if is_tsv_source(spec):
        data = read_tsv(Path(items[0]), target)
    else:
        pairs = []
        for item in items:
            label, sep, path = item.partition(":")
            if not sep or label.strip() not in LABELS or not path.strip():
                raise SequenceFileError(
                    f"data source item {item!r} in {spec!r}: expected LABEL:PATH with LABEL 0 or 1, e.g. 1:pos.fa"
                )
            pairs.append((LABELS[label.strip()], Path(path.strip())))
        data = read_fasta_classes(pairs)
        if target == "regression":
            data = Labeled(data.seqs, data.labels.astype(np.float32), data.ids, "regression")
    if data.target == "binary":
        require_two_classes(data.labels, spec)
    return data


def is_tsv_source(spec: str) -> bool:
    """Whether a `read_source` spec names one TSV (not `label:path` FASTA pairs)."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    return len(items) == 1 and not re.match(r"^[^:/\\]+:", items[0])


def require_two_classes(labels: np.ndarray, source: str) -> None:
    """Binary tasks need both classes; raise naming the source and the one label found."""
    present = np.unique(labels)
    if present.size < 2:
        only = int(present[0]) if present.size else "none"
        raise SequenceFileError(f"{source}: all {labels.size} sequences have label {only}; need both 0 and 1")


def read_sequences(path: str | Path, labelled: bool) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Sequences to score: `(ids, sequences, labels or None)` from a FASTA (ids = record ids) or a TSV
    (`sequence[<TAB>label]`, ids = row numbers; an optional header, `sequence` (or `seq`)).

    FASTA input has no labels; `labelled=True` requires a TSV `sequence<TAB>label`.
    """
    path = check_file(Path(path), "input file")
    first = next((line for _, line in numbered_lines(path) if line.strip()), "")
    if first.lstrip().startswith(">"):
        if labelled:
            raise SequenceFileError(f"{path}: FASTA has no labels; give a TSV with columns sequence<TAB>label")
        records = read_fasta(path)
        return np.asarray([r for r, _ in records]), [s for _, s in records], None
    if labelled:
        data = read_tsv(path)
        return np.arange(1, len(data.seqs) + 1).astype(str), data.seqs, data.labels.astype(np.float32)
    rows = [(n, line.split("\t")[0].strip()) for n, line in numbered_lines(path) if line.split("\t")[0].strip()]
    if rows and rows[0][1].upper() in ("SEQ", "SEQUENCE"):
        rows = rows[1:]
    if not rows:
        raise SequenceFileError(f"{path}: no sequences found")
    for lineno, seq in rows:
        bad = invalid_char(seq)
        if bad:
            raise SequenceFileError(
                f"{path}:{lineno}: invalid character {bad[1]!r} at position {bad[0] + 1} of the sequence "
                "(only A, C, G, T, N are allowed)"
            )
    return np.arange(1, len(rows) + 1).astype(str), [seq.upper() for _, seq in rows], None
