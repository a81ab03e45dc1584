"""`chromatin.peaks`: vectorised bin labelling against a per-bin reference, windows against the genome, splits,
negatives, blacklist, the cache, multi-label export, and every bad peak input as a one-line error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.data.encode import decode
from harness.plugins import make_task
from tasks import _peak_intervals as pi
from tasks._synthetic_peaks import write_synthetic_peaks


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    return write_synthetic_peaks(tmp_path / "synth")


def reference_labels(sizes: list[int], bin_size: int, peaks: list[list[tuple[int, int, int]]], min_overlap: float):
    """Per-bin loop: {(chrom, bin): labels} from a coverage mask per chromosome and label."""
    out: dict[tuple[int, int], set[int]] = {}
    for j, intervals in enumerate(peaks):
        for c, size in enumerate(sizes):
            covered = np.zeros(size, bool)
            for cc, s, e in intervals:
                if cc == c:
                    covered[s:e] = True
            for b in range(size // bin_size):
                if covered[b * bin_size : (b + 1) * bin_size].sum() >= min_overlap * bin_size:
                    out.setdefault((c, b), set()).add(j)
    return out


@pytest.mark.parametrize("min_overlap", [0.5, 0.01, 1.0])
def test_labelling_matches_a_per_bin_reference(rng: np.random.Generator, min_overlap: float) -> None:
    sizes, bin_size = [1050, 777, 2000], 50
    peaks = []
    for _ in range(5):
        c = rng.integers(0, 3, 40)
        s = rng.integers(0, np.array(sizes)[c])
        e = s + rng.integers(1, 120, 40)  # overlapping, unsorted, some past the chromosome end
        peaks.append([(int(a), int(b), int(d)) for a, b, d in zip(c, s, e, strict=True)])
    layout = pi.BinLayout(("a", "b", "c"), np.array(sizes), bin_size)
    sets = [pi.Intervals(*(np.array(col, dtype=np.int64) for col in zip(*p, strict=True))) for p in peaks]
    bins, labels = pi.label_bins(layout, sets, min_overlap)
    expected = reference_labels(sizes, bin_size, peaks, min_overlap)
    got = {(int(c), int(s) // bin_size): set(np.flatnonzero(row).tolist())
           for c, s, row in zip(layout.chrom_of(bins), layout.local_start(bins), labels, strict=True)}  # fmt: skip
    assert got == expected and len(expected) > 10


def test_task_builds_windows_splits_and_ids(synth: Path) -> None:
    genome = synth.parent / "genome.fa"
    task = make_task("chromatin.peaks", {"genome": str(genome), "peaks": str(synth), "window": 300})
    assert task.io.target == "multilabel" and task.io.label_names == ("CTCF", "GATA", "ETS", "AP1")
    assert {g: i.tolist() for g, i in task.label_groups.items()} == {"dnase": [1, 3], "tf": [0, 2]}
    splits = task.splits()
    chroms = {k: {i.split(":")[0] for i in v.ids} for k, v in splits.items()}
    assert chroms["test"] <= {"chr8", "chr9"} and chroms["val"] == {"chr7"}
    assert not chroms["train"] & {"chr7", "chr8", "chr9"}
    import pyfaidx

    fasta = pyfaidx.Fasta(str(genome), as_raw=True)
    ds = splits["train"]
    assert ds.labels.min() >= 0 and ds.labels.sum(1).min() == 1  # no negatives asked: every example is positive
    for row in (0, len(ds) - 1):
        chrom, span = ds.ids[row].split(":")
        start, end = map(int, span.split("-"))
        assert end - start == 200
        lo = (start + end) // 2 - 150
        want = ("N" * max(-lo, 0) + fasta[chrom][max(lo, 0) : lo + 300]).ljust(300, "N")
        assert decode(ds.take(np.array([row])).inputs[0][0], 300) == want.upper()
    motif = {"CTCF": "CCGCGAGGGGGCAG"}["CTCF"]
    seqs = [decode(c, 300) for c in ds.take(np.flatnonzero(ds.labels[:, 0])).inputs[0]]
    rc = motif.translate(str.maketrans("ACGT", "TGCA"))[::-1]
    assert np.mean([motif in s or rc in s for s in seqs]) > 0.9


def test_chromosome_ends_are_n_padded(tmp_path: Path) -> None:
    (tmp_path / "g.fa").write_text(">chr1\n" + "ACGT" * 100 + "\n>chr7\n" + "A" * 400 + "\n>chr8\n" + "C" * 400 + "\n")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.bed").write_text("chr1\t0\t200\nchr7\t200\t400\nchr8\t0\t100\n")
    task = make_task("chromatin.peaks", {"genome": str(tmp_path / "g.fa"), "peaks": str(tmp_path / "p"),
                                         "test_chroms": "chr8", "window": 600})  # fmt: skip
    splits = task.splits()
    train = decode(splits["train"].take(np.array([0])).inputs[0][0], 600)
    assert splits["train"].ids.tolist() == ["chr1:0-200"] and train == "N" * 200 + "ACGT" * 100
    assert splits["val"].ids.tolist() == ["chr7:200-400"] and splits["test"].ids.tolist() == ["chr8:0-200"]


def test_negatives_chroms_blacklist_and_min_overlap(synth: Path) -> None:
    base = {"genome": str(synth.parent / "genome.fa"), "peaks": str(synth)}
    plain = make_task("chromatin.peaks", base).splits()["train"]
    neg_splits = make_task("chromatin.peaks", {**base, "negatives": 2}).splits()
    neg = neg_splits["train"]
    again = make_task("chromatin.peaks", {**base, "negatives": 2}).splits()["train"]
    n_pos = sum(int((ds.labels.sum(1) > 0).sum()) for ds in neg_splits.values())
    n_neg = sum(int((ds.labels.sum(1) == 0).sum()) for ds in neg_splits.values())
    assert n_neg == 2 * n_pos and (neg.labels.sum(1) == 0).sum() > 0.5 * len(neg) - 40  # spread over chromosomes
    assert neg.ids.tolist() == again.ids.tolist()  # seeded
    assert set(plain.ids) <= set(neg.ids)
    limited = make_task("chromatin.peaks", {**base, "chroms": "chr1,chr7,chr8"}).splits()["train"]
    assert {i.split(":")[0] for i in limited.ids} == {"chr1"}
    first = plain.ids[0]
    chrom, span = first.split(":")
    (synth.parent / "black.bed").write_text(f"{chrom}\t{span.split('-')[0]}\t{int(span.split('-')[0]) + 1}\n")
    black = make_task("chromatin.peaks", {**base, "blacklist": str(synth.parent / "black.bed")}).splits()["train"]
    assert first not in set(black.ids) and len(black) == len(plain) - 1
    strict = make_task("chromatin.peaks", {**base, "min_overlap": 1.0}).splits()["train"]
    assert len(strict) < len(plain)


def test_cache_is_reused_and_rebuilt_when_a_peak_file_changes(synth: Path) -> None:
    opts = {"genome": str(synth.parent / "genome.fa"), "peaks": str(synth)}
    first = make_task("chromatin.peaks", opts).splits()["train"]
    again = make_task("chromatin.peaks", opts).splits()["train"]
    assert again.folder == first.folder and again.meta["digest"] == first.meta["digest"]
    bed = synth.parent / "peaks" / "CTCF.bed"
    bed.write_text(bed.read_text() + "chr1\t100\t400\n")
    changed = make_task("chromatin.peaks", opts).splits()["train"]
    assert changed.folder != first.folder and "chr1:200-400" in set(changed.ids)


def test_folder_of_gzipped_unsorted_overlapping_files(tmp_path: Path) -> None:
    (tmp_path / "g.fa").write_text("".join(f">chr{c}\n" + "ACGT" * 250 + "\n" for c in range(1, 10)))
    (tmp_path / "p").mkdir()
    lines = "track name=x\nchr9\t300\t500\nchr1\t0\t150\nchr1\t100\t260\nchr7\t0\t200\nchr8\t0\t200\n"
    (tmp_path / "p" / "dnase.narrowPeak.gz").write_bytes(gzip.compress(lines.encode()))
    task = make_task("chromatin.peaks", {"genome": str(tmp_path / "g.fa"), "peaks": str(tmp_path / "p")})
    assert task.io.label_names == ("dnase",)
    assert task.splits()["train"].ids.tolist() == ["chr1:0-200"]  # [0, 260) merged: bin 200-400 has 60 bp < 100
    assert task.splits()["test"].ids.tolist() == ["chr8:0-200", "chr9:200-400", "chr9:400-600"]


def bad_input(tmp_path: Path, bed: bytes, name: str = "x.bed", **extra: str) -> str:
    (tmp_path / "g.fa").write_text("".join(f">chr{c}\n" + "ACGT" * 250 + "\n" for c in range(1, 10)))
    (tmp_path / "p").mkdir(exist_ok=True)
    (tmp_path / "p" / name).write_bytes(bed)
    with pytest.raises(ValueError) as err:
        make_task("chromatin.peaks", {"genome": str(tmp_path / "g.fa"), "peaks": str(tmp_path / "p"), **extra}).splits()
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("bed", "expected"),
    [
        (b"chr1\t0\t100\nchr1\tten\t200\n", "x.bed:2: coordinates 'ten', '200' are not integers"),
        (b"chr1\t0\t100\nchr2\t300\t300\n", "x.bed:2: start 300, end 300: need 0 <= start < end"),
        (b"track name=a\nchr1\t0\t100\nchr1\t5\n", "x.bed:3: 2 column(s)"),
        (b"", "x.bed: empty peak file"),
        (b"1\t0\t100\n2\t0\t100\n", "chromosome(s) 1, 2 not in the genome"),
    ],
)
def test_bad_peak_files_are_one_line_errors(tmp_path: Path, bed: bytes, expected: str) -> None:
    message = bad_input(tmp_path, bed)
    assert expected in message
    if "genome" in expected:
        assert "chr1, chr2, chr3" in message and "'chr1' vs '1'" in message


def test_a_gz_that_is_not_gzip_is_named(tmp_path: Path) -> None:
    assert "x.bed.gz: named .gz but is not gzip-compressed" in bad_input(tmp_path, b"chr1\t0\t100\n", "x.bed.gz")


def test_bad_options_are_one_line_errors(tmp_path: Path, synth: Path) -> None:
    base = {"genome": str(synth.parent / "genome.fa"), "peaks": str(synth)}
    for extra, expected in [({"test_chroms": "chrX"}, "data.test_chroms: chrX not in the genome"),
                            ({"val_chroms": "chr8"}, "share chr8"),
                            ({"genome": str(tmp_path / "none.fa")}, "no such FASTA file"),
                            ({"peaks": str(tmp_path / "none.tsv")}, "no such file or folder")]:  # fmt: skip
        with pytest.raises(ValueError, match=expected):
            make_task("chromatin.peaks", {**base, **extra})
    sheet = tmp_path / "s.tsv"
    sheet.write_text("name\tfile\nA\ta.bed\n")
    with pytest.raises(ValueError, match=r"s.tsv:1: header .* lacks column"):
        make_task("chromatin.peaks", {**base, "peaks": str(sheet)})


def test_export_multilabel_tsv_and_fasta(tmp_path: Path, synth: Path) -> None:
    sets = ["--set", f"data.genome={synth.parent / 'genome.fa'}", "--set", f"data.peaks={synth}"]
    for out in ("t.tsv", "t.fa"):
        assert main(["export", "--task", "chromatin.peaks", "--out", str(tmp_path / out), "--limit", "5", *sets]) == 0
    lines = (tmp_path / "t.tsv").read_text().splitlines()
    assert lines[0] == "id\tsequence\tCTCF\tGATA\tETS\tAP1" and len(lines) == 6
    row = lines[1].split("\t")
    assert row[0].startswith(("chr8:", "chr9:")) and len(row[1]) == 1000 and set(row[2:]) <= {"0", "1"}
    header = (tmp_path / "t.fa").read_text().splitlines()[0]
    positives = [n for n, v in zip(lines[0].split("\t")[2:], row[2:], strict=True) if v == "1"]
    assert header == f">{row[0]} label={','.join(positives)}"
