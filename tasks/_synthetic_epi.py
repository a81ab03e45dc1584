"""A synthetic genome and enhancer–promoter pair table in TargetFinder's exact formats, for offline EPI runs.

The genome: `N_CHROMS` chromosomes (`chr1`…, 120–400 kb, ~2 Mb in all) of random background (GC 42%) with non-
overlapping enhancer (200–400 bp) and promoter (150–250 bp) elements. Each element carries, with probability
`P_MOTIF`, two copies (either strand, within 60 bp of its midpoint) of the half of one of `len(PARTNERS)` compatible
motif pairs (enhancer motif, promoter motif). Pairs: each promoter with its `PAIRS_PER_PROMOTER` nearest enhancers
on the same chromosome; a pair interacts (label 1) iff the enhancer and promoter carry the two halves of the same
motif pair — so positives are rare (P_MOTIF² / 4 ≈ 1:20) and cluster on promoters, as in the real data.
Names are `synthetic|chrN:start-end` (BED-style), written to `genome.fa` and `pairs.csv.gz`; the table has no
`prediction` column (that column is TargetFinder's own output, which synthetic data does not have).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from harness.data.split_cache import locked
from tasks._synthetic_enhancers import resolve, revcomp

PARTNERS = (  # (enhancer motif, promoter motif): real consensus sites of factors that cooperate across the loop
    ("TGACTCA", "GGGGCGGGGC"),  # AP-1 ↔ SP1 GC-box
    ("AGATAAG", "CCAATCAG"),  # GATA ↔ NF-Y CCAAT-box
    ("CCGGAAGT", "AAGATGGCGGC"),  # ETS ↔ YY1
    ("CACGTG", "TATAAAAG"),  # E-box ↔ TATA-box
)
N_CHROMS = 8
CHROM_KB = (120, 400)
P_MOTIF = 0.45
PAIRS_PER_PROMOTER = 20
SLOT = 2000  # one element per SLOT bp at most, so elements never overlap
PROMOTER_SHARE = 0.12  # fraction of element slots that hold promoters
CORE = 60  # motifs lie within CORE bp of the element midpoint
GC = 0.42
VERSION = 1  # bump when the generator changes; part of the output folder name


def _background(rng: np.random.Generator, n: int) -> bytearray:
    p = [(1 - GC) / 2, GC / 2, GC / 2, (1 - GC) / 2]
    return bytearray(np.frombuffer(b"ACGT", dtype=np.uint8)[rng.choice(4, size=n, p=p)].tobytes())


def _plant(seq: bytearray, mid: int, motif: str, rng: np.random.Generator) -> None:
    for _ in range(2):
        site = resolve(motif if rng.random() < 0.5 else revcomp(motif), rng)
        start = int(rng.integers(mid - CORE, mid + CORE - len(site)))
        seq[start : start + len(site)] = site.encode()


def generate(folder: Path, seed: int) -> tuple[Path, Path]:
    """Write `genome.fa` and `pairs.csv.gz` into `folder` (reused when present); returns their paths. One process
    at a time writes them (`<folder>.lock`): benchmark cells of the same task start side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    fasta, table = folder / "genome.fa", folder / "pairs.csv.gz"
    with locked(folder.with_name(folder.name + ".lock")):
        if not (fasta.exists() and table.exists()):
            _write(folder, seed, fasta, table)
    return fasta, table


def _write(folder: Path, seed: int, fasta: Path, table: Path) -> None:
    """Generate the genome and the pair table through `.tmp` files renamed into place."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, int]] = []
    with (folder / "genome.fa.tmp").open("w") as out:
        for c in range(1, N_CHROMS + 1):
            chrom = f"chr{c}"
            size = int(rng.integers(*CHROM_KB)) * 1000
            seq = _background(rng, size)
            slots = rng.permutation(np.arange(1, size // SLOT - 1))  # first and last slot stay empty
            n_prom = max(2, int(len(slots) * PROMOTER_SHARE))
            elements = {}
            for kind, chosen, (lo, hi) in (("P", slots[:n_prom], (150, 250)), ("E", slots[n_prom:], (200, 400))):
                for slot in chosen:
                    length = int(rng.integers(lo, hi))
                    start = int(slot) * SLOT + int(rng.integers(0, SLOT - length))
                    cls = int(rng.integers(len(PARTNERS))) if rng.random() < P_MOTIF else -1
                    if cls >= 0:
                        _plant(seq, start + length // 2, PARTNERS[cls][kind == "P"], rng)
                    elements[(kind, start)] = (f"synthetic|{chrom}:{start}-{start + length}", cls)
            enh = sorted((s, v) for (k, s), v in elements.items() if k == "E")
            enh_mid = np.array([s for s, _ in enh])
            for (kind, start), (p_name, p_cls) in sorted(elements.items()):
                if kind != "P":
                    continue
                for i in np.argsort(np.abs(enh_mid - start), kind="stable")[:PAIRS_PER_PROMOTER]:
                    e_name, e_cls = enh[i][1]
                    rows.append((e_name, p_name, int(e_cls >= 0 and e_cls == p_cls)))
            out.write(f">{chrom}\n")
            text = seq.decode()
            out.writelines(text[i : i + 60] + "\n" for i in range(0, len(text), 60))
    with gzip.open(folder / "pairs.csv.gz.tmp", "wt", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["enhancer_name", "promoter_name", "label"])
        writer.writerows(rows)
    (folder / "genome.fa.tmp").replace(fasta)
    (folder / "pairs.csv.gz.tmp").replace(table)
