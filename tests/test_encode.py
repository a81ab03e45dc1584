import itertools

import numpy as np
import pytest
import torch

from harness.data.encode import (
    InvalidSequenceError,
    decode,
    encode,
    encode_many,
    kmer_ids,
    kmer_vocab_size,
    mask_from_lengths,
    one_hot,
    reverse_complement,
)
from tests.conftest import random_seqs


def test_round_trip_and_case(rng: np.random.Generator) -> None:
    seqs = [*random_seqs(rng, 20, 37), "acgtnNACGT", "A"]
    codes, lengths = encode_many(seqs)
    assert codes.dtype == np.uint8 and codes.shape == (22, 37)
    for row, seq in zip(codes, seqs, strict=True):
        assert decode(row, len(seq)) == seq.upper()
    assert lengths.tolist() == [len(s) for s in seqs]
    assert (codes[-1, 1:] == 4).all()  # padding holds N


def test_codes_are_acgtn_0_to_4() -> None:
    assert encode("ACGTN").tolist() == [0, 1, 2, 3, 4]


def test_invalid_character_names_sequence_and_position() -> None:
    with pytest.raises(InvalidSequenceError, match=r"sequence 1: invalid character 'X' at position 3"):
        encode_many(["ACGT", "ACXT"])


def test_reverse_complement_of_padded_rows() -> None:
    codes, lengths = encode_many(["AACG", "TTGCAN", "G"])
    rc = reverse_complement(codes, lengths)
    assert [decode(r, n) for r, n in zip(rc, lengths, strict=True)] == ["CGTT", "NTGCAA", "C"]
    assert (rc[0, 4:] == 4).all() and (rc[2, 1:] == 4).all()
    assert np.array_equal(reverse_complement(rc, lengths), codes)


def test_one_hot_zeroes_n_and_padding() -> None:
    codes, lengths = encode_many(["ACGTN", "AC"])
    mask = torch.from_numpy(mask_from_lengths(lengths, 5))
    x = one_hot(torch.from_numpy(codes), mask)
    assert x.shape == (2, 4, 5)
    assert torch.equal(x[0, :, :4], torch.eye(4))
    assert x[0, :, 4].sum() == 0 and x[1, :, 2:].sum() == 0


def test_kmer_ids_match_python_reference(rng: np.random.Generator) -> None:
    k = 3
    seqs = [*random_seqs(rng, 5, 12), "ACGNACGT"]
    codes, lengths = encode_many(seqs)
    mask = torch.from_numpy(mask_from_lengths(lengths, codes.shape[1]))
    ids, kmask = kmer_ids(torch.from_numpy(codes), mask, k)
    index = {"".join(p): i + 1 for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    for row, seq in enumerate(seqs):
        for pos in range(ids.shape[1]):
            kmer = seq[pos : pos + k]
            if len(kmer) < k:
                assert ids[row, pos] == 0 and not kmask[row, pos]
            elif "N" in kmer:
                assert ids[row, pos] == 4**k + 1
            else:
                assert ids[row, pos] == index[kmer]
    assert int(ids.max()) < kmer_vocab_size(k)


def test_kmer_too_long_k() -> None:
    with pytest.raises(ValueError, match="shorter than k=5"):
        kmer_ids(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool), 5)
