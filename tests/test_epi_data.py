"""EPI data: pair-table parsing, pyfaidx windows, chromosome / random splits, leakage audit, augmentation, real
pair tables, the missing-genome error, and a tracked run on `epi.synthetic`."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from harness.config import ConfigError, parse_overrides
from harness.data.encode import decode
from harness.data.splits import duplicate_report
from harness.paths import DataNotFoundError
from harness.plugins import make_task
from harness.training.run import RunRequest, train_run
from tasks._epi_splits import chromosome_split, pair_leakage, random_split
from tasks._genome import GenomeError, cut_windows, window_starts
from tasks._targetfinder_pairs import PairTableError, read_pairs

HEADER = "enhancer_name,promoter_name,label,prediction\n"


def write_table(path: Path, rows: list[str]) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write(HEADER + "".join(r + "\n" for r in rows))
    return path


def test_read_pairs_parses_names_labels_and_predictions(tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "X_pairs.csv.gz", ["X|chr1:100-300,X|chr1:5000-5800,1,0", "X|chrX:7-9,X|chrX:50-60,0,1"]
    )
    table = read_pairs(path)
    assert list(table.enhancers.chrom) == ["chr1", "chrX"] and list(table.enhancers.mid) == [200, 8]
    assert list(table.promoters.start) == [5000, 50] and list(table.promoters.end) == [5800, 60]
    assert list(table.labels) == [1, 0] and table.prediction is not None and list(table.prediction) == [0, 1]
    assert table.ids[0] == "X|chr1:100-300::X|chr1:5000-5800" and list(table.lines) == [2, 3]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("X|chr1:100-300,chr1:5000-5800,1,0", r":3: malformed element name 'chr1:5000-5800'"),
        ("X|chr1:100-x,X|chr1:5000-5800,1,0", r":3: malformed element name 'X\|chr1:100-x'"),
        ("X|chr1:300-100,X|chr1:5000-5800,1,0", r":3: element 'X\|chr1:300-100' has end 100 <= start 300"),
        ("X|chr1:100-300,X|chr1:5000-5800,2,0", r":3: bad label '2'"),
        ("X|chr1:100-300,X|chr1:5000-5800,1", r":3: expected 4 columns, found 3"),
    ],
)
def test_read_pairs_errors_name_file_line_value(tmp_path: Path, row: str, message: str) -> None:
    path = write_table(tmp_path / "bad.csv.gz", ["X|chr1:1-2,X|chr1:3-4,0,0", row])
    with pytest.raises(PairTableError, match=f"bad.csv.gz{message}"):
        read_pairs(path)


def test_read_pairs_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("enhancer_name,label\nX|chr1:1-2,0\n")
    with pytest.raises(PairTableError, match=r"p\.csv:1: header .* lacks column\(s\) promoter_name"):
        read_pairs(path)


@pytest.fixture
def fasta(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, str]:
    """chr1: 200 bp of known random bases (soft-masked from 50 to 60, an R at 70); chr2: 30 bp."""
    chr1 = "".join(rng.choice(list("ACGT"), size=200))
    text = chr1[:50] + chr1[50:60].lower() + chr1[60:70] + "R" + chr1[71:]
    path = tmp_path / "g.fa"
    path.write_text(
        ">chr1 test\n" + "\n".join(text[i : i + 60] for i in range(0, 200, 60)) + "\n>chr2\n" + "A" * 30 + "\n"
    )
    return path, chr1


def test_windows_are_centred_uppercase_and_n_padded(fasta: tuple[Path, str]) -> None:
    path, chr1 = fasta
    chrom = np.array(["chr1", "chr1", "chr1", "chr2", "chr1"])
    start = np.array([40, -5, 190, 20, 300])  # inside, before the start, past the end, past a short chrom, beyond
    seqs = cut_windows(path, chrom, start, 20, ["row"] * 5)
    got = [decode(c) for c in seqs.codes]
    assert got[0] == chr1[40:70][:20] and got[0][10:] == chr1[50:60].upper()
    assert got[1] == "N" * 5 + chr1[:15]
    assert got[2] == chr1[190:] + "N" * 10
    assert got[3] == "A" * 10 + "N" * 10
    assert got[4] == "N" * 20 and list(seqs.lengths) == [20] * 5
    assert (
        decode(cut_windows(path, np.array(["chr1"]), np.array([65]), 10, ["r"]).codes[0])
        == chr1[65:70] + "N" + chr1[71:75]
    )


def test_window_midpoint_convention() -> None:
    """An element [100, 110) has midpoint 105; a width-10 window is [100, 110), a width-11 one [100, 111)."""
    assert list(window_starts(np.array([105]), 10)) == [100] and list(window_starts(np.array([105]), 11)) == [100]


def test_missing_chromosome_names_chromosome_and_pair(fasta: tuple[Path, str]) -> None:
    with pytest.raises(GenomeError, match=r"chromosome 'chr9' is not in .*g.fa \(needed by pair A::B\)"):
        cut_windows(fasta[0], np.array(["chr1", "chr9"]), np.array([0, 0]), 10, ["x", "pair A::B"])


def test_genome_missing_error_explains_hg19(real_data: Path) -> None:
    task = make_task("epi.nhek")
    url = r"https://hgdownload\.soe\.ucsc\.edu/goldenPath/hg19/bigZips/hg19\.fa\.gz"
    with pytest.raises(DataNotFoundError, match=rf"{url}.*--set data\.genome="):
        task.splits()
    with pytest.raises(DataNotFoundError, match=r"genome FASTA /nope/hg19\.fa does not exist"):
        make_task("epi.nhek", {"genome": "/nope/hg19.fa"}).splits()


def test_epi_cell_on_a_genome_cuts_real_pairs(real_data: Path, tmp_path: Path) -> None:
    """Real IMR90 pairs against a genome lacking their chromosomes: a clear error naming chromosome and pair."""
    (tmp_path / "g.fa").write_text(">chrZ\nACGT\n")
    task = make_task("epi.imr90", {"genome": str(tmp_path / "g.fa")})
    assert task.io.lengths == (3000, 2000) and task.io.inputs == "seq_pair" and task.primary_metric == "auprc"
    with pytest.raises(GenomeError, match=r"chromosome 'chr\w+' is not in .* \(needed by enhancer of .*IMR90_pairs"):
        task.splits()


@pytest.mark.parametrize(
    ("cell", "pos", "neg"),
    [("gm12878", 2113, 42200), ("hela_s3", 1740, 34800), ("huvec", 1524, 30400), ("imr90", 1254, 25000),
     ("k562", 1977, 39500), ("nhek", 1291, 25600)],
)  # fmt: skip
def test_real_pair_tables_load(real_data: Path, cell: str, pos: int, neg: int) -> None:
    table, idx = make_task(f"epi.{cell}").pair_splits()
    assert (int(table.labels.sum()), int((table.labels == 0).sum())) == (pos, neg)
    chroms = {s: set(table.enhancers.chrom[i]) for s, i in idx.items()}
    assert not (chroms["train"] & chroms["val"] or chroms["train"] & chroms["test"] or chroms["val"] & chroms["test"])
    for name in ("val", "test"):
        assert 0.07 < len(idx[name]) / len(table) < 0.13
        assert abs(table.labels[idx[name]].mean() - table.labels.mean()) < 0.015


def test_chromosome_split_is_seeded_and_balanced(rng: np.random.Generator) -> None:
    chrom = rng.choice([f"chr{i}" for i in range(1, 23)], size=5000, p=np.arange(22, 0, -1) / 253)
    labels = (rng.random(5000) < 0.05).astype(np.int8)
    a, b = chromosome_split(chrom, labels, 0.1, 0.1, 3), chromosome_split(chrom, labels, 0.1, 0.1, 3)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert sorted(np.concatenate(list(a.values()))) == list(range(5000))
    assert all(abs(len(a[s]) / 5000 - t) < 0.03 for s, t in (("train", 0.8), ("val", 0.1), ("test", 0.1)))
    with pytest.raises(ValueError, match="at least 3 chromosomes"):
        chromosome_split(np.array(["chr1", "chr2"] * 5), np.zeros(10), 0.1, 0.1, 0)
    r = random_split(labels, 0.1, 0.1, 0)
    assert sorted(np.concatenate(list(r.values()))) == list(range(5000)) and abs(len(r["val"]) - 500) <= 1


def test_pair_leakage_counts() -> None:
    train = [("e1", "p1"), ("e2", "p1"), ("e3", "p2")]
    test = [("e1", "p1"), ("e4", "p1"), ("e3", "p9"), ("e5", "p5")]
    r = pair_leakage(train, test)
    assert (r["shared_pair"], r["shared_enhancer"], r["shared_promoter"], r["shared_either"]) == (1, 2, 2, 3)
    assert r["test_pairs"] == 4 and r["fraction_either"] == 0.75


@pytest.mark.parametrize(("split", "leaks"), [("chromosome", False), ("random", True)])
def test_synthetic_splits_leak_only_when_random(split: str, leaks: bool) -> None:
    task = make_task("epi.synthetic", {"split": split})
    table, idx = task.pair_splits()
    assert 0.03 < table.labels.mean() < 0.08  # ~1:20
    pairs = list(zip(table.enhancers.names, table.promoters.names, strict=True))
    r = pair_leakage([pairs[i] for i in idx["train"]], [pairs[i] for i in idx["test"]])
    assert r["shared_pair"] == 0
    assert (r["shared_promoter"] > 0 and r["shared_enhancer"] > 0) == leaks and (r["shared_either"] == 0) != leaks
    splits = task.splits()
    assert task.io.lengths == (500, 300) and splits["train"].seqs[0].codes.shape[1] == 500
    assert duplicate_report(splits).n_across == 0
    ids = {s: {i.split("::")[0].split("|")[1].split(":")[0] for i in ds.ids} for s, ds in splits.items()}
    assert bool(ids["train"] & ids["test"]) == leaks


def test_synthetic_positives_share_promoters() -> None:
    table, _ = make_task("epi.synthetic").pair_splits()
    promoters = table.promoters.names[table.labels == 1]
    _, counts = np.unique(promoters, return_counts=True)
    assert counts[counts > 1].sum() / len(promoters) > 0.5


def test_shift_augmentation_touches_train_only() -> None:
    plain = make_task("epi.synthetic").splits()
    aug = make_task("epi.synthetic", {"augment": "shift", "shifts": 3}).splits()
    for name in ("val", "test"):
        assert np.array_equal(plain[name].ids, aug[name].ids) and plain[name].digest() == aug[name].digest()
    n_plain, n_pos = len(plain["train"]), int(plain["train"].labels.sum())
    extra = aug["train"].subset(np.arange(n_plain, len(aug["train"])))
    assert np.array_equal(aug["train"].ids[:n_plain], plain["train"].ids)
    assert 2 * n_pos < len(extra) <= 3 * n_pos and extra.labels.min() == 1.0
    assert all("@shift" in i for i in extra.ids)
    report = duplicate_report(aug)
    assert report.n_across == 0 and report.within["train"] == duplicate_report(plain).within["train"] == 0


def test_bad_options_raise() -> None:
    with pytest.raises(ConfigError, match=r"data\.split='genome'"):
        make_task("epi.synthetic", {"split": "genome"})
    with pytest.raises(ConfigError, match=r"augment=shift needs data\.shifts >= 1"):
        make_task("epi.synthetic", {"augment": "shift"})
    with pytest.raises(ConfigError, match="unknown data setting"):
        make_task("epi.synthetic", {"genome": "x.fa"})


def test_train_and_log_on_synthetic_epi(tracking_uri: str) -> None:
    overrides = parse_overrides(["model.k=2", "model.max_iter=200", "train.progress=false"])
    run_id = train_run(RunRequest("epi.synthetic", "kmer_logreg", overrides, experiment="epi-unit"))
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["split_protocol"] == "chromosome"
    assert run.data.tags["synthetic"] == "true" and 0.0 <= run.data.metrics["test_auprc"] <= 1.0
    assert "test_f1" in run.data.metrics
