"""ISM against an analytic model, forward-pass counts, windows, variant files and CLI errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.cli import main
from harness.data.datasets import Seqs
from harness.data.encode import one_hot
from harness.interpret.ism import logit_fn, parse_window, read_variants, saturation_mutagenesis, variant_effects
from harness.training.predictor import TorchPredictor
from tests.conftest import random_seqs


class PositionWeights(nn.Module):
    """`logit[c] = sum_i W[c, i, base_i]` (N and padding add 0), so ISM's answer is `W[c, i, alt] - W[c, i, ref]`."""

    def __init__(self, weights: torch.Tensor) -> None:  # (C, L, 4)
        super().__init__()
        self.w = nn.Parameter(weights)

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = one_hot(codes, mask)  # (B, 4, W)
        return torch.einsum("bjw,cwj->bc", x, self.w[:, : x.shape[2]])  # (B, C)


def dyadic_weights(rng: np.random.Generator, outputs: int, length: int) -> np.ndarray:
    """Multiples of 1/8: float32 sums of a few hundred of them are exact, so ISM must match to the last bit."""
    return rng.integers(-16, 17, size=(outputs, length, 4)).astype(np.float32) / 8


def test_ism_matches_the_analytic_effects_exactly(rng: np.random.Generator) -> None:
    w = dyadic_weights(rng, 2, 40)
    seqs = Seqs.from_strings([*random_seqs(rng, 2, 40), random_seqs(rng, 1, 25)[0][:12] + "N" + "ACGTACGTACGT"])
    fn = logit_fn(TorchPredictor(PositionWeights(torch.from_numpy(w))), "cpu")
    results = saturation_mutagenesis(fn, seqs, np.array(["a", "b", "c"]), batch_size=7, output=1)
    for r, codes, length in zip(results, seqs.codes, seqs.lengths, strict=True):
        ref = codes[:length]
        ref_w = np.where(ref < 4, w[1, np.arange(length), np.minimum(ref, 3)], 0.0)  # N contributes 0
        expected = w[1, :length] - ref_w[:, None]
        assert r.delta_logit.shape == (length, 4)
        np.testing.assert_array_equal(r.delta_logit, expected)
        assert r.ref_logit == pytest.approx(float(ref_w.sum()), abs=0)
        sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        np.testing.assert_allclose(r.delta_prob, sigmoid(r.ref_logit + expected) - sigmoid(r.ref_logit), atol=1e-6)
    table = results[2].table()
    assert len(table) == 3 * 24 + 4  # 4 alternatives at the N
    assert set(table.loc[table.position == 13, "alt"]) == set("ACGT")


def test_ism_batches_all_mutants_into_few_forward_passes(rng: np.random.Generator) -> None:
    n, length, batch = 5, 60, 128
    model = PositionWeights(torch.from_numpy(dyadic_weights(rng, 1, length)))
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
    saturation_mutagenesis(
        logit_fn(TorchPredictor(model), "cpu"),
        Seqs.from_strings(random_seqs(rng, n, length)),
        np.arange(n).astype(str),
        batch_size=batch,
    )
    assert sum(calls) == n + 3 * n * length
    assert len(calls) == math.ceil(n / batch) + math.ceil(3 * n * length / batch)


def test_window_restricts_mutants_and_bad_windows_are_named(rng: np.random.Generator) -> None:
    model = PositionWeights(torch.from_numpy(dyadic_weights(rng, 1, 30)))
    seqs = Seqs.from_strings(random_seqs(rng, 1, 30))
    r = saturation_mutagenesis(logit_fn(TorchPredictor(model), "cpu"), seqs, np.array(["x"]), parse_window("5:9"))[0]
    assert np.isnan(r.delta_logit[:4]).all() and np.isnan(r.delta_logit[9:]).all()
    assert np.isfinite(r.delta_logit[4:9]).all()
    assert sorted(set(r.table().position)) == [5, 6, 7, 8, 9]
    for bad in ("9:5", "0:3", "a:b", "7"):
        with pytest.raises(ValueError, match="--window"):
            parse_window(bad)
    with pytest.raises(ValueError, match="beyond sequence 1 of length 30"):
        saturation_mutagenesis(logit_fn(TorchPredictor(model), "cpu"), seqs, np.array(["x"]), (20, 40))


def test_variant_effects_from_sequences_and_from_a_genome(tmp_path: Path, rng: np.random.Generator) -> None:
    w = dyadic_weights(rng, 1, 21)
    fn = logit_fn(TorchPredictor(PositionWeights(torch.from_numpy(w))), "cpu")
    seq = random_seqs(rng, 1, 21)[0]
    alt = "ACGT"[("ACGT".index(seq[4]) + 1) % 4]
    (tmp_path / "v.tsv").write_text(f"id\tsequence\tpos\tref\talt\nv1\t{seq}\t5\t{seq[4]}\t{alt}\n")
    table = variant_effects(fn, read_variants(str(tmp_path / "v.tsv")))
    assert table.loc[0, "delta"] == w[0, 4, "ACGT".index(alt)] - w[0, 4, "ACGT".index(seq[4])]
    assert table.loc[0, "delta_prob"] == pytest.approx(table.loc[0, "prob_alt"] - table.loc[0, "prob_ref"])

    chrom = random_seqs(rng, 1, 100)[0]
    (tmp_path / "g.fa").write_text(f">chr1\n{chrom[:50]}\n{chrom[50:]}\n")
    (tmp_path / "g.tsv").write_text(f"id\tchrom\tpos\tref\talt\nv2\tchr1\t40\t{chrom[39]}\t{alt}\n")
    genomic = read_variants(str(tmp_path / "g.tsv"), str(tmp_path / "g.fa"), length=21)
    assert genomic.seqs == [chrom[29:50]] and genomic.positions.tolist() == [10]
    assert variant_effects(fn, genomic)["pos"].tolist() == [40]


def test_bad_variant_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "v.tsv"
    path.write_text("id\tsequence\tpos\tref\talt\nok\tACGTACGT\t2\tC\tG\nbad\tACGTACGT\t3\tA\tT\n")
    with pytest.raises(ValueError, match=r"line 3 \(id bad\): ref A does not match base G at position 3"):
        read_variants(str(path))
    path.write_text("id\tseq\tpos\tref\talt\nx\tACGT\t1\tA\tC\n")
    with pytest.raises(ValueError, match="missing: sequence"):
        read_variants(str(path))
    path.write_text("id\tchrom\tpos\tref\talt\nx\tchr9\t1\tA\tC\n")
    (tmp_path / "g.fa").write_text(">chr1\nACGTACGTAC\n")
    with pytest.raises(ValueError, match="chromosome 'chr9' is not in the genome"):
        read_variants(str(path), str(tmp_path / "g.fa"), length=5)


def test_cli_names_a_bad_run_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nACGTACGT\n")
    assert main(["ism", "--run", "0123deadbeef", "--input", str(fasta), "--out", str(tmp_path / "o")]) == 2
    assert "0123deadbeef" in capsys.readouterr().err
    assert main(["explain", "--run", "0123deadbeef", "--input", str(fasta), "--method", "saliency"]) == 2
    assert "0123deadbeef" in capsys.readouterr().err
