"""Near-duplicate leakage: planted mutated copies and reverse complements are found, unrelated sequences are not,
the index agrees with brute-force exact Jaccard, `data.dedup=near` removes them before splitting, the coordinate
rule for genomic windows, and the cached run tag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import random_seqs

from harness.data import near_duplicates as nd
from harness.data.datasets import SeqDataset, Seqs
from harness.data.splits import duplicate_report
from harness.plugins import make_task
from tasks._synthetic_enhancers import revcomp


def mutate(rng: np.random.Generator, seq: str, n: int) -> str:
    """`seq` with `n` bases substituted (each by a different base)."""
    out = list(seq)
    for i in rng.choice(len(seq), size=n, replace=False):
        out[i] = rng.choice([b for b in "ACGT" if b != out[i]])
    return "".join(out)


def dataset(seqs: list[str], labels: list[int] | None = None, prefix: str = "s") -> SeqDataset:
    labels = labels if labels is not None else [i % 2 for i in range(len(seqs))]
    return SeqDataset((Seqs.from_strings(seqs),), np.asarray(labels, np.float32),
                      np.asarray([f"{prefix}{i}" for i in range(len(seqs))]))  # fmt: skip


def test_planted_copies_and_reverse_complements_are_found_unrelated_are_not() -> None:
    rng = np.random.default_rng(0)
    train = random_seqs(rng, 300, 200)
    copies = [mutate(rng, s, 2) for s in train[:40]]  # 2 substitutions in 200 bp: Jaccard ≈ 0.85
    rc_copies = [revcomp(mutate(rng, s, 2)) for s in train[40:80]]
    unrelated = random_seqs(rng, 120, 200)
    splits = {"train": dataset(train), "val": dataset(unrelated[:60], prefix="v"),
              "test": dataset(copies + rc_copies + unrelated[60:], prefix="t")}  # fmt: skip
    assert duplicate_report(splits).n_across == 0  # no exact copy: only the near-duplicate audit sees them
    counts = {(c.first, c.second): c for c in nd.split_pair_counts(splits)}
    assert counts[("train", "test")].near == 80 and counts[("train", "test")].n == 140
    assert counts[("train", "val")].near == 0 and counts[("val", "test")].near == 0
    found = nd.matches(nd.sketch(splits["train"].seqs[0]), nd.sketch(splits["test"].seqs[0]))
    assert [sorted(f) for f in found[:80]] == [[i] for i in range(80)]  # each copy finds its own original


def test_index_matches_brute_force_exact_jaccard_near_the_threshold() -> None:
    rng = np.random.default_rng(1)
    train = random_seqs(rng, 200, 200)
    query = [mutate(rng, s, 8 + i % 4) for i, s in enumerate(train[:160])]  # 4–5.5 %: Jaccard ≈ 0.5
    k_train, k_query = nd.kmer_sets(Seqs.from_strings(train)), nd.kmer_sets(Seqs.from_strings(query))
    brute = [{j for j, t in enumerate(k_train) if nd.jaccard(q, t) >= nd.THRESHOLD} for q in k_query]
    found = nd.matches(nd.sketch(Seqs.from_strings(train)), nd.sketch(Seqs.from_strings(query)))
    assert all(f <= b for f, b in zip(found, brute, strict=True))  # verified by exact Jaccard: no false positive
    n_true = sum(bool(b) for b in brute)
    assert 40 < n_true < 120 and sum(bool(f) for f in found) >= 0.9 * n_true  # recall is lowest at the threshold


def canonical_kmers(seq: str) -> set[str]:
    """The slow, obvious reference: every k-mer without N, as the smaller of itself and its reverse complement."""
    kmers = (seq[i : i + nd.K] for i in range(len(seq) - nd.K + 1))
    return {min(k, revcomp(k)) for k in kmers if "N" not in k}


def test_kmer_sets_match_a_reference_are_strand_free_and_skip_n() -> None:
    rng = np.random.default_rng(4)
    seqs = [*random_seqs(rng, 3, 60), "ACGTACGTACGTACGTAC", "ACGTTGCAAGNCTTAACCGGTAGG", "ACG"]
    seqs.append(revcomp(seqs[0]))
    sets = nd.kmer_sets(Seqs.from_strings(seqs))
    assert [len(s) for s in sets] == [len(canonical_kmers(s)) for s in seqs]
    assert np.array_equal(sets[0], sets[-1]) and len(sets[5]) == 0  # a sequence and its RC; shorter than k
    assert nd.jaccard(sets[0], sets[1]) < 0.1 and nd.jaccard(sets[0], sets[0]) == 1.0


def test_dedup_near_removes_planted_near_duplicates_before_splitting(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    base = random_seqs(rng, 200, 200)
    planted = [mutate(rng, s, 2) for s in base[:30]] + [revcomp(mutate(rng, s, 2)) for s in base[30:60]]
    labels = [i % 2 for i in range(200)] + [i % 2 for i in range(60)]  # each copy has its original's label
    tsv = tmp_path / "data.tsv"
    tsv.write_text("".join(f"{s}\t{y}\n" for s, y in zip(base + planted, labels, strict=True)))
    exact = make_task("enhancers.files", {"train": str(tsv)}).splits()
    near_task = make_task("enhancers.files", {"train": str(tsv), "dedup": "near"})
    near = near_task.splits()
    assert sum(len(ds) for ds in exact.values()) == 260 and sum(len(ds) for ds in near.values()) == 200
    assert near_task.split_protocol.endswith("+near_dedup")
    assert sum(c.near for c in nd.split_pair_counts(exact)) > 0
    assert all(c.near == 0 for c in nd.split_pair_counts(near))
    cv = make_task("enhancers.files", {"train": str(tsv), "dedup": "near", "split": "cv", "folds": 3})
    assert sum(len(f.splits()["test"]) for f in cv.fold_tasks()) == 200
    train_tsv, test_tsv = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train_tsv.write_text("".join(f"{s}\t{y}\n" for s, y in zip(base, labels, strict=False)))
    test_tsv.write_text("".join(f"{s}\t{y}\n" for s, y in zip(planted, labels[200:], strict=True)))
    given = make_task("enhancers.files", {"train": str(train_tsv), "test": str(test_tsv), "dedup": "near"}).splits()
    assert len(given["test"]) == 60 and len(given["train"]) + len(given["val"]) == 140  # the training copies go


def test_keep_one_per_cluster_keeps_the_first_of_a_chain() -> None:
    rng = np.random.default_rng(3)
    a = random_seqs(rng, 1, 300)[0]
    b = mutate(rng, a, 3)
    c = mutate(rng, b, 3)
    other = random_seqs(rng, 3, 300)
    keep = nd.keep_one_per_cluster([Seqs.from_strings([other[0], c, a, other[1], b, other[2]])])
    assert list(keep) == [0, 1, 3, 5]  # c, a and b form one cluster; its first row (c) is kept


def test_coordinate_rule_flags_windows_overlapping_two_thirds() -> None:
    width = 300  # reach = 300 - 200 = 100 bp between midpoints
    chrom_a, mids_a = np.array(["chr1", "chr2"]), np.array([[1000], [5000]])
    chrom_b = np.array(["chr1", "chr1", "chr1", "chr3", "chr2"])
    mids_b = np.array([[1100], [1101], [900], [1000], [5000]])
    near = nd.coordinate_near_duplicates(chrom_a, mids_a, chrom_b, mids_b, [width])
    assert list(near) == [True, False, True, False, True]
    pair = nd.coordinate_near_duplicates(chrom_a[:1], np.array([[1000, 8000]]), np.array(["chr1", "chr1"]),
                                         np.array([[1050, 8050], [1050, 9000]]), [300, 300])  # fmt: skip
    assert list(pair) == [True, False]  # both windows of one training pair, not just one of them


def test_run_tag_is_computed_once_per_dataset_and_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    task = make_task("enhancers.synthetic", {"n": 200})
    digest = task.digest()
    tag = nd.near_duplicate_tag(task, digest)
    assert tag == "0.0000"  # random backgrounds: no near-duplicate of a test sequence in train
    files = list((tmp_path / "cache" / "near_duplicates").glob(f"{digest}_*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["n"] == len(task.splits()["test"])

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(nd, "split_pair_counts", fail)
    assert nd.near_duplicate_tag(task, digest) == tag
    cv = make_task("enhancers.synthetic", {"n": 200, "split": "cv", "folds": 2})
    with pytest.raises(AssertionError, match="recomputed"):
        nd.near_duplicate_tag(cv)  # another dataset: computed, not read from the first one's cache
