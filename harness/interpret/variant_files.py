"""Variant files as one checked table: a TSV with a header, or a VCF (plain or gzip) for the genomic form.

TSV: `id, sequence, pos, ref, alt` (pos 1-based within the sequence) or, genomic, `id, chrom, pos, ref, alt`;
optional `label` (0/1) and `effect` (a number).

VCF (read when the file's first line is `##fileformat=VCF...`): columns CHROM POS ID REF ALT [QUAL FILTER INFO];
genomic only. A multi-allelic ALT (`A,T`) becomes one variant per alternative allele. The id is the ID column, or
`chrom:pos:ref:alt` where it is `.`; a multi-allelic row's variants are `ID:alt`. Two INFO keys are read where they
occur: `label` (0/1) and `effect` (a number), as the TSV columns of the same names; a key that some rows carry must
be on every row. Indels, symbolic alleles (`<DEL>`) and `*` are not single-base substitutions: refused, counted.

Every table gets a `line` column, the file line each variant was read from, for the errors that name it.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

OPTIONAL = ("label", "effect")
VCF_COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT")


def read_variant_table(path: str, genomic: bool) -> pd.DataFrame:
    """Columns `id, chrom|sequence, pos, ref, alt, line` (strings but `line`) and, where given, `label`/`effect`;
    raises ValueError naming the file (and line) of the first problem: missing columns, no rows, indels (all
    counted), duplicate ids, labels that are not 0/1, effects that are not numbers."""
    lines = _open_text(path)
    if lines and lines[0].startswith("##fileformat=VCF"):
        if not genomic:
            raise ValueError(f"variants file {path}: a VCF holds chromosome positions; give the genome (--genome FA)")
        table = _read_vcf(path, lines)
    else:
        table = _read_tsv(path, lines, "chrom" if genomic else "sequence")
    _check_table(path, table)
    return table


def _open_text(path: str) -> list[str]:
    """The file's lines (gzip read by its magic bytes), or a ValueError naming the file."""
    try:
        raw = Path(path).read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        return text.decode("utf-8", errors="replace").splitlines()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"variants file {path}: cannot read it ({err})") from None


def _read_tsv(path: str, lines: list[str], place: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(io.StringIO("\n".join(lines)), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"variants file {path}: cannot read it as a TSV ({err})") from None
    missing = [c for c in ("id", place, "pos", "ref", "alt") if c not in table.columns]
    if missing or table.empty:
        raise ValueError(
            f"variants file {path}: needs a header with columns id, {place}, pos, ref, alt and at least "
            f"one row (missing: {', '.join(missing) or 'rows'})"
        )
    table["line"] = np.arange(len(table)) + 2  # line 1 is the header
    return table


def _read_vcf(path: str, lines: list[str]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    header = False
    for number, line in enumerate(lines, start=1):
        if line.startswith("##") or not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if line.startswith("#"):
            if tuple(f.upper() for f in fields[:5]) != ("#CHROM", *VCF_COLUMNS[1:]):
                raise ValueError(f"variants file {path}:{number}: VCF header must start #CHROM POS ID REF ALT")
            header = True
            continue
        if not header or len(fields) < 5:
            raise ValueError(f"variants file {path}:{number}: expected a #CHROM header, then at least 5 tab-separated "
                             f"columns CHROM POS ID REF ALT, found {len(fields)}")  # fmt: skip
        chrom, pos, vid, ref, alts = fields[:5]
        info = dict(item.partition("=")[::2] for item in fields[7].split(";")) if len(fields) > 7 else {}
        alleles = alts.split(",")
        for alt in alleles:
            name = f"{chrom}:{pos}:{ref}:{alt}" if vid == "." else (vid if len(alleles) == 1 else f"{vid}:{alt}")
            row: dict[str, object] = {"id": name, "chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "line": number}
            rows.append(row | {key: info[key] for key in OPTIONAL if key in info})
    if not rows:
        raise ValueError(f"variants file {path}: no variant rows")
    table = pd.DataFrame(rows)
    for key in OPTIONAL:
        if key in table.columns:
            table[key] = table[key].fillna("")  # a row without the key: refused by `_check_table`
    return table


def _check_table(path: str, table: pd.DataFrame) -> None:
    """Whole-table checks before any row is read: indels (counted), duplicate ids, `label`/`effect` values."""
    indel = (table["ref"].str.len() != 1) | (table["alt"].str.len() != 1) | (table["alt"] == "*")
    if indel.any():
        first = table.iloc[int(np.flatnonzero(indel)[0])]
        raise ValueError(f"variants file {path}: {int(indel.sum())} indel(s) refused (only single-base substitutions "
                         f"are scored), e.g. line {first['line']} (id {first['id']})")  # fmt: skip
    duplicated = table["id"][table["id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"variants file {path}: duplicate id(s) {', '.join(duplicated.unique()[:5])}")
    for column in OPTIONAL:
        if column not in table.columns:
            continue
        values = pd.to_numeric(table[column].str.strip().replace("", "nan"), errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if column == "label":
            bad |= ~values.isin((0, 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            wanted = "0 or 1" if column == "label" else "a number"
            raise ValueError(f"variants file {path}, line {table['line'].iloc[i]} (id {table['id'].iloc[i]}): "
                             f"{column} {table[column].iloc[i]!r} is not {wanted}")  # fmt: skip
