"""Genomic Benchmarks from interval lists + a local genome (`tasks._gb_intervals`): on a small synthetic genome the
build equals the package's own `download_dataset` (cloud cache off, local interval folder) read back through
regbench's folder reader, and a plain slicing reference; clear errors naming the interval; the cache; the task."""

from __future__ import annotations

import csv
import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest

from harness.config import ConfigError
from harness.data.encode import ALPHABET
from harness.paths import DataNotFoundError
from harness.plugins import make_task
from tasks import _gb_intervals as gbi
from tasks import _genomic_benchmarks as gb

NAME = "human_enhancers_ensembl"
ENSEMBL_FA = "Homo_sapiens.GRCh38.dna.toplevel.fa.gz"  # the reference name the package derives from metadata's url
METADATA = f"""classes:
  negative:
    extra_processing: ENSEMBL_HUMAN_GENOME
    type: fa.gz
    url: ftp://ftp.ensembl.org/pub/release-100/fasta/homo_sapiens/dna/{ENSEMBL_FA}
  positive:
    extra_processing: ENSEMBL_HUMAN_GENOME
    type: fa.gz
    url: ftp://ftp.ensembl.org/pub/release-100/fasta/homo_sapiens/dna/{ENSEMBL_FA}
version: 0
"""
CONTIGS = {"1": 4000, "2": 2500, "X": 1500, "MT": 300}  # Ensembl names; the lists say chr1, chr2, chrX
REAL_INTERVALS = "genomic_benchmarks/human_enhancers_ensembl_intervals"
Rows = list[tuple[str, str, int, int, str]]


def random_genome(rng: np.random.Generator) -> dict[str, str]:
    """Contigs of random bases with soft-masked (lower-case) stretches and runs of N."""
    genome = {}
    for name, size in CONTIGS.items():
        seq = np.array(list(rng.choice(list("ACGT"), size=size)), dtype="<U1")
        for lo in rng.integers(0, size - 100, size=4):
            seq[lo : lo + 60] = np.char.lower(seq[lo : lo + 60])
        seq[size // 2 : size // 2 + 25] = "N"
        genome[name] = "".join(seq)
    return genome


def write_fasta(path: Path, genome: dict[str, str], prefix: str = "", width: int = 60) -> Path:
    """FASTA with `width`-column lines and Ensembl-like header descriptions; gzipped when `path` ends in .gz."""
    lines = []
    for name, seq in genome.items():
        lines.append(f">{prefix}{name} dna:chromosome chromosome:GRCh38:{name}:1:{len(seq)}:1 REF")
        lines += [seq[i : i + width] for i in range(0, len(seq), width)]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def random_rows(rng: np.random.Generator, n: int) -> Rows:
    """`n` intervals on chr1, chr2, chrX (lengths 20–300, a third on the minus strand), ids 0..n-1 shuffled."""
    rows = []
    for i in rng.permutation(n):
        region = str(rng.choice(["1", "2", "X"]))
        length = int(rng.integers(20, 300))
        start = int(rng.integers(0, CONTIGS[region] - length))
        rows.append((str(i), f"chr{region}", start, start + length, "-" if rng.random() < 0.33 else "+"))
    return rows


def write_interval_folder(folder: Path, lists: dict[tuple[str, str], Rows], metadata: str = METADATA) -> Path:
    """GB's interval layout: metadata.yaml + {train,test}/{positive,negative}.csv.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.yaml").write_text(metadata)
    for (split, cls), rows in lists.items():
        (folder / split).mkdir(exist_ok=True)
        with gzip.open(folder / split / f"{cls}.csv.gz", "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(gbi.COLUMNS)
            writer.writerows(rows)
    return folder


@pytest.fixture
def genome(rng: np.random.Generator) -> dict[str, str]:
    return random_genome(rng)


@pytest.fixture
def lists(rng: np.random.Generator) -> dict[tuple[str, str], Rows]:
    sizes = {"train": 14, "test": 12}  # more than 10 rows: ids sort as file names, "10" before "2"
    return {(s, c): random_rows(rng, n) for s, n in sizes.items() for c in ("positive", "negative")}


def publish(monkeypatch: pytest.MonkeyPatch, lists: dict[tuple[str, str], Rows]) -> None:
    """The lists' own counts stand in for the dataset's published ones."""
    counts = {s: sum(len(r) for (split, _), r in lists.items() if split == s) for s in gb.OFFICIAL_SPLITS}
    monkeypatch.setitem(gbi.PUBLISHED_COUNTS, NAME, counts)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, lists: dict[tuple[str, str], Rows]) -> None:
    publish(monkeypatch, lists)


def reference(genome: dict[str, str], row: tuple[str, str, int, int, str]) -> str:
    """Plain slicing: upper case, reverse complement on the minus strand."""
    _, region, start, end, strand = row
    seq = genome[region.removeprefix("chr")][start:end].upper()
    return seq[::-1].translate(str.maketrans("ACGTN", "TGCAN")) if strand == "-" else seq


def as_strings(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    bounds = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    alphabet = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    seqs = [alphabet[arrays["codes"][a:b]].tobytes().decode() for a, b in itertools.pairwise(bounds)]
    return dict(zip(arrays["ids"].astype(str), seqs, strict=True))


def test_build_equals_the_packages_download_dataset_and_plain_slicing(tmp_path, genome, lists, published) -> None:
    from genomic_benchmarks.loc2seq import download_dataset  # pandas, Biopython; no torchtext, no network here

    folder = write_interval_folder(tmp_path / NAME, lists)
    write_fasta(tmp_path / "ref" / ENSEMBL_FA, genome)  # where the package looks before downloading
    out = tmp_path / "package"
    download_dataset(
        folder, version=0, dest_path=out, cache_path=tmp_path / "ref", use_cloud_cache=False, local_repo=True
    )
    package = gb._read_folder(out / NAME)  # the package's files, read the way regbench always has

    fasta = write_fasta(tmp_path / "ensembl.fa", genome)  # names 1, 2, X, MT: the lists' chr prefix is stripped
    ucsc = write_fasta(tmp_path / "ucsc.fa", genome, prefix="chr")  # names chr1, ...: matched as written
    for path in (fasta, ucsc):
        built = gbi.build(folder, gbi.read_metadata(folder, NAME), path, NAME)
        assert set(built) == set(package)
        for key, value in package.items():
            np.testing.assert_array_equal(built[key], value, err_msg=f"{path.name}: {key}")
    strings = as_strings(package)
    expected = {f"{s}/{c}/{row[0]}": reference(genome, row) for (s, c), rows in lists.items() for row in rows}
    assert strings == expected and sum(r[4] == "-" for rows in lists.values() for r in rows) > 5


def test_load_caches_and_rebuilds_when_the_lists_change(tmp_path, genome, lists, published) -> None:
    folder = write_interval_folder(tmp_path / "intervals", lists)
    fasta = write_fasta(tmp_path / "ensembl.fa", genome)
    splits = gbi.load_from_intervals(NAME, str(folder), str(fasta))
    assert {k: len(v) for k, v in splits.items()} == {"train": 28, "test": 24}
    assert splits["train"].labels.sum() == 14 and splits["test"].ids[0] == "test/positive/0"
    cache = gbi.cache_path(NAME, folder, fasta)
    built_at = cache.stat().st_mtime_ns
    assert gbi.load_from_intervals(NAME, str(folder), str(fasta))["test"].ids.tolist() == splits["test"].ids.tolist()
    assert cache.stat().st_mtime_ns == built_at  # second load: read from the cache
    lists[("test", "negative")] = lists[("test", "negative")][:-1]
    gbi.PUBLISHED_COUNTS[NAME] = {"train": 28, "test": 23}  # restored with the rest by the `published` fixture
    write_interval_folder(folder, lists)
    assert len(gbi.load_from_intervals(NAME, str(folder), str(fasta))["test"]) == 23


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            ("99", "chr9", 10, 60, "+"),
            r"line 3: interval id 99 chr9:10-60 \(\+\): region 'chr9' is not in genome .*ens",
        ),
        (("99", "chr2", 2400, 2600, "-"), r"line 3: interval id 99 chr2:2400-2600 \(-\): outside chr2 .*length 2500"),
        (("99", "chr2", -5, 20, "+"), r"interval id 99 chr2:-5-20 .*need 0 <= start < end <= length"),
        (("99", "chr2", 30, 30, "+"), r"interval id 99 chr2:30-30 .*outside chr2"),
    ],
)
def test_bad_intervals_name_file_line_id_region_and_genome(tmp_path, monkeypatch, genome, lists, row, message) -> None:
    lists[("test", "negative")].insert(1, row)
    publish(monkeypatch, lists)
    folder = write_interval_folder(tmp_path / "intervals", lists)
    fasta = write_fasta(tmp_path / "ensembl.fa", genome)
    with pytest.raises(gbi.IntervalError, match=message) as err:
        gbi.load_from_intervals(NAME, str(folder), str(fasta))
    assert f"{folder / 'test' / 'negative.csv.gz'} line 3" in str(err.value) and str(fasta) in str(err.value)
    assert not list(gbi.cache_path(NAME, folder, fasta).parent.glob("gb_*intervals*"))  # nothing half-written


def test_without_the_ensembl_rule_chr_names_must_match(tmp_path, genome, lists, published) -> None:
    folder = write_interval_folder(tmp_path / "intervals", lists, METADATA.replace("ENSEMBL_HUMAN_GENOME", "null"))
    fasta = write_fasta(tmp_path / "ensembl.fa", genome)
    with pytest.raises(gbi.IntervalError, match=r"region 'chr\w+' is not in genome .*\(it has 1, 2, X, MT, …\)"):
        gbi.load_from_intervals(NAME, str(folder), str(fasta))


def test_counts_must_match_the_published_ones(tmp_path, genome, lists) -> None:
    folder = write_interval_folder(tmp_path / "intervals", lists)
    fasta = write_fasta(tmp_path / "ensembl.fa", genome)
    with pytest.raises(ValueError, match=r"\{'train': 28, 'test': 24\} intervals per split, but .*'train': 123872"):
        gbi.load_from_intervals(NAME, str(folder), str(fasta))


def test_iupac_codes_become_n_and_other_characters_are_an_error(tmp_path, genome, lists, published) -> None:
    row = lists[("train", "positive")][0]
    contig = row[1].removeprefix("chr")
    genome[contig] = genome[contig][: row[2]] + "R" + genome[contig][row[2] + 1 :]
    folder = write_interval_folder(tmp_path / "intervals", lists)
    train = gbi.load_from_intervals(NAME, str(folder), str(write_fasta(tmp_path / "iupac.fa", genome)))["train"]
    seqs = train.seqs[0]
    i = train.ids.tolist().index(f"train/positive/{row[0]}")
    assert seqs.codes[i, 0 if row[4] == "+" else seqs.lengths[i] - 1] == 4
    genome[contig] = genome[contig][: row[2]] + "*" + genome[contig][row[2] + 1 :]
    with pytest.raises(
        gbi.IntervalError, match=rf"line \d+: interval id \d+ chr{contig}:.* holds '\*' there, not a base"
    ):
        gbi.load_from_intervals(NAME, str(folder), str(write_fasta(tmp_path / "star.fa", genome)))


def test_missing_genome_intervals_and_bad_options_are_clear(tmp_path, lists) -> None:
    folder = write_interval_folder(tmp_path / "intervals", lists)
    with pytest.raises(DataNotFoundError, match=r"(?s)genome FASTA .*nope.fa \(data.genome\) does not exist.*hg38"):
        gbi.load_from_intervals(NAME, str(folder), str(tmp_path / "nope.fa"))
    with pytest.raises(DataNotFoundError, match=r"data.intervals=.*: no .*metadata.yaml"):
        gbi.load_from_intervals(NAME, str(tmp_path / "empty"), str(tmp_path / "nope.fa"))
    with pytest.raises(ConfigError, match=r"data.intervals=.* needs data.genome"):
        make_task("enhancers.ensembl", {"intervals": str(folder)})
    with pytest.raises(ConfigError, match=r"data.root/data.download do not apply"):
        make_task("enhancers.ensembl", {"genome": "g.fa", "root": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"apply to data.source=files, not tsv"):
        make_task("enhancers.cohn", {"source": "tsv", "genome": "g.fa"})


def test_task_trains_on_splits_built_from_intervals(tmp_path, genome, lists, published) -> None:
    folder = write_interval_folder(tmp_path / "intervals", lists)
    fasta = write_fasta(tmp_path / "ensembl.fa", genome)
    task = make_task("enhancers.ensembl", {"genome": str(fasta), "intervals": str(folder)})
    assert task.split_protocol == "official_test+stratified_val0.1_seed0" and str(fasta) in task.description
    splits = task.splits()
    assert len(splits["test"]) == 24 and len(splits["train"]) + len(splits["val"]) == 28
    assert set(splits["val"].ids) | set(splits["train"].ids) <= {f"train/{c}/{i}" for c in ("positive", "negative")
                                                                 for i in range(14)}  # fmt: skip


def test_real_ensembl_lists_match_the_published_counts_and_build_on_a_remapped_genome(
    tmp_path: Path, genome: dict[str, str], real_data: Path
) -> None:
    real = real_data / REAL_INTERVALS
    meta = gbi.read_metadata(real, NAME)
    rows = {(s, c): gbi.read_intervals(real / s / f"{c}.csv.gz") for s in gb.OFFICIAL_SPLITS for c, _ in gb.CLASSES}
    assert {s: sum(len(r) for (split, _), r in rows.items() if split == s) for s in gb.OFFICIAL_SPLITS} == {
        "train": 123_872,
        "test": 30_970,
    }
    lists = {}
    for key, found in rows.items():  # the first rows of each real list and a few minus-strand ones, moved to chr1
        picked = {r.id: r for r in found[:15] + [r for r in found if r.strand == "-"][:5]}.values()
        lists[key] = [(r.id, "chr1", r.start % 1000, r.start % 1000 + r.end - r.start, r.strand) for r in picked]
    folder = write_interval_folder(tmp_path / NAME, lists, (real / "metadata.yaml").read_text())
    strings = as_strings(gbi.build(folder, meta, write_fasta(tmp_path / "ensembl.fa", genome), "remapped"))
    expected = {f"{s}/{c}/{r[0]}": reference(genome, r) for (s, c), rows in lists.items() for r in rows}
    assert strings == expected and sum(r[4] == "-" for rows in lists.values() for r in rows) >= 5
