import numpy as np
import pytest

from harness.data.datasets import FeatureDataset, SeqDataset, Seqs, concat
from harness.data.splits import duplicate_report, stratified_holdout


def _dataset(seqs: list[str], labels: list[int], prefix: str) -> SeqDataset:
    return SeqDataset((Seqs.from_strings(seqs),), np.asarray(labels, np.float32),
                      np.asarray([f"{prefix}{i}" for i in range(len(seqs))]))  # fmt: skip


def test_take_trims_to_batch_width_and_masks() -> None:
    ds = _dataset(["ACGTACGT", "AC", "ACG"], [1, 0, 1], "s")
    batch = ds.take(np.array([1, 2]))
    codes, mask = batch.inputs
    assert codes.shape == (2, 3) and mask.tolist() == [[True, True, False], [True, True, True]]
    rc_codes, _ = ds.take(np.array([1]), reverse_complement=True).inputs
    assert rc_codes.tolist() == [[2, 3]]  # AC -> GT


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="mismatched lengths"):
        SeqDataset((Seqs.from_strings(["AC", "GT"]),), np.zeros(3, np.float32), np.asarray(["a", "b"]))
    with pytest.raises(ValueError, match="labels 1"):
        FeatureDataset(np.zeros((2, 3), np.float32), np.zeros(1, np.float32), np.asarray(["a", "b"]))


def test_duplicate_report_finds_reverse_complements() -> None:
    train = _dataset(["AACCG", "GGGTT", "ACGTA"], [1, 0, 1], "tr")
    test = _dataset(["CGGTT", "TTTTT"], [1, 0], "te")  # CGGTT is the reverse complement of AACCG
    report = duplicate_report({"train": train, "test": test})
    assert report.across[("train", "test")] == [("tr0", "te0")]
    assert report.n_across == 1 and report.within == {"train": 0, "test": 0}


def test_stratified_holdout_is_seeded_and_disjoint() -> None:
    labels = np.array([0] * 50 + [1] * 50)
    keep, hold = stratified_holdout(labels, 0.2, seed=1)
    assert len(hold) == 20 and labels[hold].sum() == 10 and not set(keep) & set(hold)
    assert np.array_equal(hold, stratified_holdout(labels, 0.2, seed=1)[1])


def test_concat_pads_branches() -> None:
    merged = concat([_dataset(["AC"], [1], "a"), _dataset(["ACGT"], [0], "b")])
    assert merged.seqs[0].codes.shape == (2, 4) and merged.ids.tolist() == ["a0", "b0"]
