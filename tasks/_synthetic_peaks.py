"""A synthetic genome FASTA with planted-motif peaks in BED files and a peak sheet: test and tutorial data for
`chromatin.peaks`.

Chromosomes `chr1..chrK` of uniform random bases. Each label has one motif (`tasks._synthetic_chromatin.MOTIFS`);
for each of its peaks a random position gets the motif (on a random strand) and the label's BED file a peak of
`peak_width` bp centred on it, so a window around a positive bin contains the label's motif. Two labels share a
`group` per sheet row (`dnase`/`tf`), to exercise per-group metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks._synthetic_chromatin import MOTIFS

_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def write_synthetic_peaks(folder: Path, n_chroms: int = 10, chrom_size: int = 60_000, n_labels: int = 4,
                          peaks_per_label: int = 60, peak_width: int = 300, seed: int = 0) -> Path:  # fmt: skip
    """Write `genome.fa`, `peaks/<label>.bed` and `sheet.tsv` into `folder`; returns the sheet's path."""
    rng = np.random.default_rng(seed)
    motifs = list(MOTIFS.items())[:n_labels]
    genome = [rng.choice(list("ACGT"), size=chrom_size) for _ in range(n_chroms)]
    (folder / "peaks").mkdir(parents=True, exist_ok=True)
    rows = ["name\tpath\tgroup"]
    for j, (name, motif) in enumerate(motifs):
        lines = []
        for _ in range(peaks_per_label):
            c = int(rng.integers(n_chroms))
            centre = int(rng.integers(peak_width, chrom_size - peak_width))
            site = motif if rng.random() < 0.5 else motif.translate(_COMPLEMENT)[::-1]
            lo = centre - len(site) // 2
            genome[c][lo : lo + len(site)] = list(site)
            lines.append(f"chr{c + 1}\t{centre - peak_width // 2}\t{centre + peak_width // 2}\t{name}_peak\t0\t.\n")
        label = name.replace("-", "")
        (folder / "peaks" / f"{label}.bed").write_text("".join(lines))
        rows.append(f"{label}\tpeaks/{label}.bed\t{'dnase' if j % 2 else 'tf'}")
    with open(folder / "genome.fa", "w") as f:
        for c, bases in enumerate(genome):
            seq = "".join(bases)
            f.write(f">chr{c + 1}\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60)))
    sheet = folder / "sheet.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet
