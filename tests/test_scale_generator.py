"""Synthetic enhancers at Genomic Benchmarks ensembl scale: the length distribution, variable-length tasks, options."""

from __future__ import annotations

import numpy as np
import pytest

from harness.config import ConfigError
from harness.data.encode import decode
from harness.plugins import make_task
from tasks._synthetic_enhancers import (
    ENSEMBL_MAX,
    ENSEMBL_MIN,
    ENSEMBL_N,
    ensembl_lengths,
    generate,
    has_composite,
    planted_motifs,
    site_matches,
)


def test_ensembl_lengths_match_the_real_set() -> None:
    lengths = ensembl_lengths(ENSEMBL_N, seed=0)
    assert len(lengths) == 154_842
    assert abs(lengths.mean() - 270) < 1.5 and abs(lengths.std() - 123) < 1.5
    assert lengths.min() >= ENSEMBL_MIN and lengths.max() <= ENSEMBL_MAX
    assert (ensembl_lengths(500, 0) == lengths[:500]).all() and (ensembl_lengths(500, 1) != lengths[:500]).any()


def test_default_stream_is_unchanged() -> None:
    """Digests of the generator before variable lengths existed (same seeds, fixed 200 bp)."""
    assert generate(400, 200, seed=1).dataset.digest() == "2698e71c511d493a"


def test_short_sequences_are_redrawn_instead_of_failing() -> None:
    data = generate(300, 100, seed=3, lengths=np.full(300, 100))  # 100 bp: some draws do not fit at first
    assert all(has_composite(m) == bool(y) for m, y in zip(data.motifs, data.dataset.labels, strict=True))


def test_ensembl_task_is_variable_length_and_follows_the_grammar() -> None:
    task = make_task("enhancers.synthetic", {"n": 400, "lengths": "ensembl"})
    assert task.io.lengths == (ENSEMBL_MAX,)
    splits = task.splits()
    lengths = np.concatenate([ds.seqs[0].lengths for ds in splits.values()])
    assert len(np.unique(lengths)) > 100 and lengths.min() >= ENSEMBL_MIN
    test = splits["test"]
    for row, motifs in enumerate(planted_motifs(task, "test")):
        seq = decode(test.seqs[0].codes[row], int(test.seqs[0].lengths[row]))
        assert all(site_matches(seq, m) for m in motifs)
        assert has_composite(motifs) == bool(test.labels[row])
    codes, mask = test.seqs[0].take(np.arange(4))
    assert (codes[~mask] == 4).all()  # padding is N and masked


@pytest.mark.parametrize(
    ("options", "message"),
    [({"lengths": "ensembl", "length": 300}, "does not apply"), ({"lengths": "gamma"}, "one of fixed, ensembl")],
)
def test_bad_length_options_fail_before_loading(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_task("enhancers.synthetic", options)
