"""Enhancer tasks: Genomic Benchmarks cache layout and .npz cache, offline errors, real iEnhancer-2L and Cohn data,
the synthetic grammar generator, and the no-shared-sequence guarantee."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import random_seqs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from harness.config import ConfigError
from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import decode
from harness.data.readers import read_fasta
from harness.data.splits import duplicate_report
from harness.paths import DataNotFoundError
from harness.plugins import make_task
from tasks import _genomic_benchmarks as gb
from tasks import enhancers
from tasks._synthetic_enhancers import PlantedMotif, generate, has_composite, planted_motifs, revcomp, site_matches

NAME = "human_enhancers_ensembl"


def write_gb_layout(root: Path, layout: dict[str, dict[str, list[str]]], name: str = NAME) -> Path:
    """Files exactly as genomic_benchmarks writes them: <root>/<name>/<split>/<class>/<id>.txt, no newline."""
    for split, classes in layout.items():
        for cls, seqs in classes.items():
            folder = root / name / split / cls
            folder.mkdir(parents=True)
            for i, seq in enumerate(seqs):
                (folder / f"{i}.txt").write_text(seq)
    return root / name


@pytest.fixture
def gb_layout(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, dict[str, dict[str, list[str]]]]:
    """Variable-length sequences; train holds one within-split RC duplicate and one sequence also in test."""
    seqs = {split: {cls: [] for cls in ("positive", "negative")} for split in ("train", "test")}
    for split, n in (("train", 40), ("test", 12)):
        for cls in ("positive", "negative"):
            seqs[split][cls] = [random_seqs(rng, 1, int(rng.integers(50, 120)))[0] for _ in range(n)]
    seqs["train"]["positive"].append(revcomp(seqs["train"]["positive"][0]))  # within-train duplicate
    seqs["train"]["negative"].append(seqs["test"]["negative"][3])  # train/test overlap
    root = tmp_path / "gb"
    write_gb_layout(root, seqs)
    return root, seqs


def test_genomic_benchmarks_layout_loads_and_splits_share_nothing(gb_layout) -> None:
    root, seqs = gb_layout
    raw = gb.load_official(NAME, root)
    assert {k: len(v) for k, v in raw.items()} == {"train": 82, "test": 24}
    assert raw["train"].labels.sum() == 41 and raw["test"].labels.sum() == 12
    first = raw["train"].seqs[0]
    assert decode(first.codes[0], first.lengths[0]) == seqs["train"]["positive"][0]
    assert raw["train"].ids[0] == "train/positive/0"
    assert (first.codes[np.arange(first.codes.shape[1]) >= first.lengths[:, None]] == 4).all()  # N padding

    task = make_task("enhancers.ensembl", {"root": str(root)})
    assert task.io.lengths == (0,) and task.split_protocol == "official_test+stratified_val0.1_seed0"
    splits = task.splits()
    assert len(splits["test"]) == 24 and len(splits["train"]) + len(splits["val"]) == 80  # 2 duplicates dropped
    report = duplicate_report(splits)
    assert report.n_across == 0 and sum(report.within.values()) == 0
    assert duplicate_report(raw).n_across == 1 and duplicate_report(raw).within["train"] == 1  # the audit sees them


def test_second_load_reads_the_npz_cache_without_the_files(gb_layout) -> None:
    root, _ = gb_layout
    first = make_task("enhancers.ensembl", {"root": str(root)}).digest()
    caches = list(gb.cache_path(NAME, root).parent.glob("gb_*.npz"))
    assert len(caches) == 1
    for txt in (root / NAME).rglob("*.txt"):
        txt.unlink()  # the file walk would now find nothing
    shutil.rmtree(root / NAME)
    assert make_task("enhancers.ensembl", {"root": str(root)}).digest() == first


def test_cache_is_rebuilt_when_the_folders_change(gb_layout, rng: np.random.Generator) -> None:
    root, _ = gb_layout
    assert len(gb.load_official(NAME, root)["test"]) == 24
    (root / NAME / "test" / "positive" / "extra.txt").write_text(random_seqs(rng, 1, 80)[0])
    assert len(gb.load_official(NAME, root)["test"]) == 25


def test_uncached_offline_dataset_says_what_to_run(tmp_path: Path) -> None:
    task = make_task("enhancers.ensembl", {"root": str(tmp_path)})
    with pytest.raises(DataNotFoundError) as err:
        task.splits()
    message = str(err.value)
    assert "download_dataset('human_enhancers_ensembl', version=0, dest_path=" in message
    assert f"{tmp_path}/human_enhancers_ensembl/{{train,test}}/{{positive,negative}}/<id>.txt" in message
    assert "data.download=true" in message
    cohn = make_task("enhancers.cohn", {"root": str(tmp_path)})
    with pytest.raises(DataNotFoundError, match=r"data\.source=tsv"):
        cohn.splits()


def test_download_failure_offline_is_data_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, root: Path) -> None:
        raise ConnectionError("Temporary failure in name resolution")

    monkeypatch.setattr(gb, "download", offline)
    task = make_task("enhancers.ensembl", {"root": str(tmp_path), "download": True})
    with pytest.raises(DataNotFoundError, match=r"(?s)download failed: ConnectionError.*download_dataset"):
        task.splits()


def test_download_writes_the_layout_then_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(name: str, root: Path) -> None:
        calls.append(name)
        write_gb_layout(
            root, {s: {"positive": ["ACGTA", "CCGTA"], "negative": ["GGGTT", "TTTAC"]} for s in gb.OFFICIAL_SPLITS}
        )

    monkeypatch.setattr(gb, "download", fake_download)
    assert len(gb.load_official(NAME, tmp_path, allow_download=True)["train"]) == 4
    assert calls == [NAME]


def test_genomic_benchmarks_invalid_file_is_named(tmp_path: Path) -> None:
    write_gb_layout(tmp_path, {s: {"positive": ["ACGT"], "negative": ["ACGU"]} for s in gb.OFFICIAL_SPLITS})
    with pytest.raises(ValueError, match=r"train/negative/0\.txt: invalid character 'U' at position 4"):
        gb.load_official(NAME, tmp_path)


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"unknown data setting.*data\.bogus"):
        make_task("enhancers.ienhancer2l", {"bogus": 1})
    with pytest.raises(ConfigError, match=r"data\.val_fraction=1\.5"):
        make_task("enhancers.synthetic", {"val_fraction": 1.5})
    with pytest.raises(ConfigError, match=r"data\.source='web'"):
        make_task("enhancers.cohn", {"source": "web"})
    with pytest.raises(ConfigError, match=r"test_fraction applies to data\.source=tsv"):
        make_task("promoters.nontata", {"test_fraction": 0.3})
    with pytest.raises(ConfigError, match=r"needs data\.train"):
        make_task("enhancers.files")


def test_dedupe_policy() -> None:
    seqs = ["AACG", "CGTT", "AACG", "GGGA", "TCCC", "ACGT"]  # CGTT = rc(AACG); TCCC = rc(GGGA)
    ds = SeqDataset((Seqs.from_strings(seqs),), np.array([1, 1, 1, 1, 0, 0], np.float32), np.arange(6).astype(str))
    kept = enhancers.dedupe(ds)
    assert list(kept.ids) == ["0", "5"]  # AACG kept once; GGGA/TCCC conflict → both dropped


def test_files_task_fasta_pairs_with_given_test(tmp_path: Path, rng: np.random.Generator) -> None:
    for name, n in (("pos", 30), ("neg", 30), ("tpos", 5), ("tneg", 5)):
        (tmp_path / f"{name}.fa").write_text(
            "".join(f">{name}{i}\n{s}\n" for i, s in enumerate(random_seqs(rng, n, 60)))
        )
    t = tmp_path
    task = make_task("enhancers.files", {"train": f"1:{t}/pos.fa,0:{t}/neg.fa", "test": f"1:{t}/tpos.fa,0:{t}/tneg.fa"})
    splits = task.splits()
    assert task.split_protocol == "given_test+stratified_val0.1_seed0"
    assert {k: len(v) for k, v in splits.items()} == {"train": 54, "val": 6, "test": 10}
    assert splits["test"].ids[0] == "tpos0"  # the record's own id


def test_files_task_tsv_without_test_is_carved(tmp_path: Path, rng: np.random.Generator) -> None:
    rows = [f"{s}\t{i % 2}" for i, s in enumerate(random_seqs(rng, 100, 40))]
    (tmp_path / "mine.tsv").write_text("seq\tlabel\n" + "\n".join(rows) + "\n")
    task = make_task("enhancers.files", {"train": str(tmp_path / "mine.tsv"), "seed": 3})
    sizes = {k: len(v) for k, v in task.splits().items()}
    assert sizes == {"train": 72, "val": 8, "test": 20} and task.split_protocol.endswith("_seed3")


def test_real_ienhancer2l(real_data: Path) -> None:
    folder = real_data / "ienhancer2l"
    counts = {f.name: len(read_fasta(f)) for f in sorted(folder.glob("*.fa"))}
    assert counts == {"enhancer_train.fa": 1484, "non_enhancer_train.fa": 1484,
                      "strong_enhancer_train.fa": 742, "weak_enhancer_train.fa": 741}  # fmt: skip
    for name, total, positives in (
        ("enhancers.ienhancer2l", 2968, 1484),
        ("enhancers.ienhancer2l_strength", 1483, 742),
    ):
        task = make_task(name)
        splits = task.splits()
        assert task.io.lengths == (200,) and task.split_protocol == "stratified_holdout_test0.2_val0.1_seed0"
        assert all((ds.seqs[0].lengths == 200).all() for ds in splits.values())
        report = duplicate_report(splits)
        print(name, {k: len(v) for k, v in splits.items()}, *report.lines())
        # the files hold no exact duplicates on either strand, so nothing is dropped and nothing is shared
        assert sum(len(ds) for ds in splits.values()) == total
        assert sum(ds.labels.sum() for ds in splits.values()) == positives
        assert report.n_across == 0 and sum(report.within.values()) == 0
        assert len(splits["test"]) == round(0.2 * total)


def test_real_cohn_dev_tsv(real_data: Path) -> None:
    task = make_task("enhancers.cohn", {"source": "tsv"})
    splits = task.splits()
    assert task.io.lengths == (500,) and task.split_protocol == "dev_tsv_stratified_test0.2_val0.1_seed0"
    assert sum(len(ds) for ds in splits.values()) == 5558
    assert sum(ds.labels.sum() for ds in splits.values()) == 2765
    assert duplicate_report(splits).n_across == 0


def test_composite_rule() -> None:
    ets, ap1 = PlantedMotif(10, 18, "ETS", "+"), PlantedMotif(21, 28, "AP-1", "+")
    assert has_composite([ets, ap1])
    assert not has_composite([ets, PlantedMotif(21, 28, "AP-1", "-")])  # wrong orientation
    assert not has_composite([ets, PlantedMotif(40, 47, "AP-1", "+")])  # wrong gap
    assert not has_composite([PlantedMotif(21, 29, "ETS", "+"), PlantedMotif(10, 17, "AP-1", "+")])  # wrong order
    assert has_composite([PlantedMotif(21, 29, "ETS", "-"), PlantedMotif(10, 17, "AP-1", "-")])  # minus strand


def test_synthetic_is_seeded_balanced_and_gc_matched() -> None:
    a, b, c = generate(400, 200, seed=1), generate(400, 200, seed=1), generate(400, 200, seed=2)
    assert a.dataset.digest() == b.dataset.digest() != c.dataset.digest() and a.motifs == b.motifs
    y = a.dataset.labels
    assert y.sum() == 200
    codes = a.dataset.seqs[0].codes
    gc = np.isin(codes, [1, 2]).mean(axis=1)
    assert abs(gc[y == 1].mean() - gc[y == 0].mean()) < 0.01
    assert abs(roc_auc_score(y, gc) - 0.5) < 0.1  # GC content alone does not separate the classes


def test_synthetic_motifs_sit_at_recorded_positions_and_follow_the_grammar() -> None:
    data = generate(300, 200, seed=0)
    both_in_negatives = 0
    for row, (motifs, label) in enumerate(zip(data.motifs, data.dataset.labels, strict=True)):
        seq = decode(data.dataset.seqs[0].codes[row])
        assert motifs and all(site_matches(seq, m) for m in motifs)
        assert all(a.end < b.start for a, b in itertools.pairwise(motifs))  # no overlaps
        assert has_composite(motifs) == bool(label)
        names = {m.name for m in motifs}
        both_in_negatives += {"ETS", "AP-1"} <= names and not label
    assert both_in_negatives > 50  # presence of both motifs is not enough


def test_synthetic_task_planted_motifs_and_kmer_learnability() -> None:
    task = make_task("enhancers.synthetic")
    assert task.synthetic and task.io.lengths == (200,)
    splits = task.splits()
    assert duplicate_report(splits).n_across == 0
    test_motifs = planted_motifs(task, "test")
    assert len(test_motifs) == len(splits["test"])
    for row, motifs in enumerate(test_motifs):
        seq = decode(splits["test"].seqs[0].codes[row])
        assert all(site_matches(seq, m) for m in motifs)

    def kmer_counts(ds: SeqDataset, k: int = 4) -> np.ndarray:
        codes = ds.seqs[0].codes.astype(np.int64)
        ids = sum(codes[:, i : codes.shape[1] - k + 1 + i] * 4 ** (k - 1 - i) for i in range(k))
        return np.stack([np.bincount(r, minlength=4**k) for r in ids]).astype(np.float32)

    model = LogisticRegression(C=0.05, max_iter=2000).fit(kmer_counts(splits["train"]), splits["train"].labels)
    auroc = roc_auc_score(splits["test"].labels, model.predict_proba(kmer_counts(splits["test"]))[:, 1])
    assert 0.62 < auroc < 0.95  # k-mers see motif presence, not the grammar


def test_planted_motifs_rejects_other_tasks(real_data: Path) -> None:
    with pytest.raises(TypeError, match="not a synthetic-enhancer task"):
        planted_motifs(make_task("enhancers.ienhancer2l"), "test")


def test_missing_dataset_message_offers_the_interval_build(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"--set data\.genome=/path/hg38\.fa \(see tasks/_gb_intervals\.py\)"):
        make_task("enhancers.ensembl", {"root": str(tmp_path)}).splits()
