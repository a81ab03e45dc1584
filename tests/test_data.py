import numpy as np
import pytest

from harness.data.datasets import FeatureDataset, SeqDataset, Seqs, concat, sequence_branches
from harness.data.splits import duplicate_report, stratified_holdout
from harness.spec import Batch


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


class _Streamed:
    """A dataset that only offers `take` (as memory-mapped and HDF5 datasets do), wrapping a SeqDataset."""

    def __init__(self, inner: SeqDataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch:
        return self.inner.take(idx, reverse_complement)


def test_sequence_branches_reads_streamed_datasets_in_chunks() -> None:
    enh = Seqs.from_strings(["ACGTN", "AC", "GGGTTTAC", "T"])
    prom = Seqs.from_strings(["AA", "CCCC", "G", "TTTTTT"])
    pair = SeqDataset((enh, prom), np.zeros(4, np.float32), np.array(list("abcd")))
    assert sequence_branches(pair) is pair.seqs
    for got, want in zip(sequence_branches(_Streamed(pair), chunk=3), (enh, prom), strict=True):
        np.testing.assert_array_equal(got.lengths, want.lengths)
        np.testing.assert_array_equal(got.codes[:, : want.codes.shape[1]], want.codes)
    with pytest.raises(TypeError, match="no sequences"):
        sequence_branches(FeatureDataset(np.zeros((2, 3), np.float32), np.zeros(2, np.float32), np.array(["x", "y"])))
