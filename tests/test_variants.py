"""`regbench variants`: bad variant files as one-line errors, the metrics against scikit-learn/scipy, and the
synthetic ground truth: a CNN trained on a planted motif separates motif-breaking from background variants by |Δ|
(AUROC ≥ 0.8) and the same CNN trained on shuffled labels does not."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from harness.cli import main
from harness.data.datasets import SeqDataset, Seqs
from harness.data.split_task import SplitTask
from harness.evaluation.variant_metrics import variant_metrics
from harness.interpret.ism import read_variants
from harness.plugins import TASKS
from harness.registry import Entry
from harness.spec import IOSpec
from harness.training.run import RunRequest, train_run
from tasks.enhancers import binary_task_metrics

MOTIF = "CCGCGAGGGGGCAG"  # CTCF (a 14-mer: learnt from 1,600 sequences in a few epochs)
HEADER = "id\tsequence\tpos\tref\talt\tlabel\n"


def write(path: Path, rows: list[str], header: str = HEADER) -> str:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["a\tACGTACGT\t2\tC\tGA\t1", "b\tACGTACGT\t3\tGT\tG\t0"], "2 indel\\(s\\) refused .* e.g. line 2 \\(id a\\)"),
        (["a\tACGTACGT\t2\tC\tG\t1", "a\tACGTACGT\t3\tG\tT\t0"], "duplicate id\\(s\\) a"),
        (["a\tACGTACGT\t2\tC\tG\t1", "b\tACGTACGT\t3\tA\tT\t0"], "line 3 \\(id b\\): ref A does not match base G"),
        (["a\tACGTACGT\t9\tC\tG\t1"], "line 2 \\(id a\\): pos 9 is outside the sequence of length 8"),
        (
            ["a\tACGTACGT\t2\tC\tG\t1", "b\tACGTACGT\t3\tG\tT\tcausal"],
            "line 3 \\(id b\\): label 'causal' is not 0 or 1",
        ),
        (["a\tACGTACGT\t2\tC\tG\t1", "b\tACGTACGT\t3\tG\tT\t"], "line 3 \\(id b\\): label '' is not 0 or 1"),
    ],
)
def test_bad_variant_files_are_one_line_errors(tmp_path: Path, rows: list[str], expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as err:
        read_variants(write(tmp_path / "v.tsv", rows))
    assert "\n" not in str(err.value)


def test_mismatches_can_be_skipped_and_counted_and_effects_must_be_numbers(tmp_path: Path) -> None:
    rows = ["a\tACGTACGT\t2\tC\tG\t1", "b\tACGTACGT\t3\tA\tT\t0", "c\tACGTACGT\t4\tT\tA\t0"]
    variants = read_variants(write(tmp_path / "v.tsv", rows), skip_mismatch=True)
    assert variants.ids.tolist() == ["a", "c"] and variants.skipped == 1 and variants.labels.tolist() == [1.0, 0.0]
    header = "id\tsequence\tpos\tref\talt\teffect\n"
    with pytest.raises(ValueError, match=r"line 3 \(id b\): effect 'nan' is not a number"):
        read_variants(write(tmp_path / "e.tsv", ["a\tACGT\t1\tA\tC\t0.5", "b\tACGT\t2\tC\tA\tnan"], header))


def test_a_vcf_reads_as_the_genomic_form_one_variant_per_alt(tmp_path: Path, rng: np.random.Generator) -> None:
    chrom = "".join(rng.choice(list("ACGT"), size=200))
    (tmp_path / "g.fa").write_text(f">chr1\n{chrom}\n")
    meta = (
        "##fileformat=VCFv4.2\n##INFO=<ID=label,Number=1,Type=Integer>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    )
    others = [b for b in "ACGT" if b != chrom[99]]
    rows = [f"chr1\t100\trs1\t{chrom[99]}\t{others[0]},{others[1]}\t.\tPASS\tlabel=1;DP=3",
            f"chr1\t51\t.\t{chrom[50]}\t{'ACGT'[('ACGT'.index(chrom[50]) + 1) % 4]}\t.\t.\tlabel=0"]  # fmt: skip
    vcf = tmp_path / "v.vcf.gz"
    vcf.write_bytes(gzip.compress((meta + "\n".join(rows) + "\n").encode()))
    variants = read_variants(str(vcf), str(tmp_path / "g.fa"), length=21)
    assert variants.ids.tolist() == [f"rs1:{others[0]}", f"rs1:{others[1]}", f"chr1:51:{chrom[50]}:{variants.alt[2]}"]
    assert variants.seqs[0] == chrom[89:110] and variants.labels.tolist() == [1.0, 1.0, 0.0]
    assert variants.given_pos.tolist() == [100, 100, 51] and variants.effects is None
    missing = f"line 4 (id rs1:{others[0]}): label '' is not 0 or 1"  # a key on some rows must be on all
    cases = [(rows[0].replace("\tlabel=1;DP=3", "\t."), missing),
             (rows[0].replace(f"{others[0]},", f"{others[0]}TT,"), "1 indel(s) refused (only single-base "
              "substitutions are scored), e.g. line 4 (id rs1:")]  # fmt: skip
    for row, message in cases:
        (tmp_path / "bad.vcf").write_text(meta + row + "\n" + rows[1] + "\n")
        with pytest.raises(ValueError, match=re.escape(message)):
            read_variants(str(tmp_path / "bad.vcf"), str(tmp_path / "g.fa"), length=21)
    with pytest.raises(ValueError, match="a VCF holds chromosome positions; give the genome"):
        read_variants(str(vcf))


def test_metrics_match_scikit_learn_and_scipy(rng: np.random.Generator) -> None:
    labels = (rng.random(80) < 0.4).astype(float)
    delta = rng.normal(size=80) * (1 + 2 * labels)
    effects = delta + rng.normal(size=80)
    got = variant_metrics(np.abs(delta), delta, labels, effects, min_effect=0.5, n_boot=200)
    assert got["variants_auroc"][0] == pytest.approx(roc_auc_score(labels, np.abs(delta)))
    assert got["variants_auprc"][0] == pytest.approx(average_precision_score(labels, np.abs(delta)))
    assert got["variants_spearman"][0] == pytest.approx(stats.spearmanr(delta, effects)[0])
    strong = np.abs(effects) > 0.5
    assert got["variants_sign_agreement"][0] == pytest.approx(
        np.mean(np.sign(delta[strong]) == np.sign(effects[strong]))
    )
    for value, low, high in got.values():
        assert low <= value <= high
    with pytest.raises(ValueError, match="one class only"):
        variant_metrics(np.abs(delta), delta, np.ones(80), None)


def planted(rng: np.random.Generator, n: int, length: int = 200) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Random sequences; half carry MOTIF at a random place (on a random strand). Returns seqs, labels, starts."""
    seqs, labels, starts = [], np.zeros(n, int), np.full(n, -1)
    for i in range(n):
        bases = rng.choice(list("ACGT"), size=length)
        if i % 2 == 0:
            start = int(rng.integers(40, length - 40))
            site = MOTIF if rng.random() < 0.5 else MOTIF.translate(str.maketrans("ACGT", "TGCA"))[::-1]
            bases[start : start + len(site)] = list(site)
            labels[i], starts[i] = 1, start
        seqs.append("".join(bases))
    return seqs, labels, starts


def variant_rows(rng: np.random.Generator, n: int) -> list[str]:
    """One motif-breaking (label 1) and one background (label 0: ≥ 20 bp from the motif, in the same central
    stretch of the sequence, so position alone tells nothing) variant per sequence."""
    seqs, _, starts = planted(rng, 2 * n)
    rows = []
    for i in range(0, 2 * n, 2):
        seq, start = seqs[i], int(starts[i])
        background = [p for p in range(40, 168) if abs(p - start - 7) >= 20]
        for label, pos in ((1, start + int(rng.integers(3, 11))), (0, int(rng.choice(background)))):
            ref = seq[pos]
            alt = "ACGT"[("ACGT".index(ref) + int(rng.integers(1, 4))) % 4]
            rows.append(f"v{i}_{label}\t{seq}\t{pos + 1}\t{ref}\t{alt}\t{label}")
    return rows


PLANTED = "test.planted_ctcf"
N_PLANTED = 2000  # sequences: with `SMALL`, 3 epochs at lr 3e-3, the motif is learnt (AUROC of |Δ| about 0.97)
SMALL = {"filters1": 64, "filters2": 32, "filters3": 32, "fc_dim": 32, "dropout": 0.0}  # basset


def planted_task(shuffle: bool = False) -> SplitTask:
    """`N_PLANTED` fixed-length sequences, label 1 = MOTIF planted (`shuffle`: labels permuted); splits 80/10/10."""
    n = N_PLANTED
    seqs, labels, _ = planted(np.random.default_rng(7), n)
    y = np.random.default_rng(8).permutation(labels) if shuffle else labels
    data = SeqDataset((Seqs.from_strings(seqs),), y.astype(np.float32), np.array([f"s{i}" for i in range(n)]))
    parts = np.split(np.random.default_rng(9).permutation(n), [int(0.8 * n), int(0.9 * n)])
    return SplitTask(PLANTED, IOSpec("seq", (200,), 1, "binary", ("ctcf",)), "auroc", "random", True,
                     lambda: {k: data.subset(np.sort(i)) for k, i in zip(("train", "val", "test"), parts, strict=True)},
                     binary_task_metrics)  # fmt: skip


@pytest.mark.slow
def test_a_trained_cnn_separates_motif_breaking_variants_and_a_shuffled_one_does_not(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(TASKS._entries, PLANTED, Entry(PLANTED, "planted CTCF (test)", planted_task))  # a plugin task
    variants = write(tmp_path / "variants.tsv", variant_rows(rng, 60))
    auroc = {}
    for name, shuffle in (("trained", False), ("shuffled", True)):
        overrides = {"data": {"shuffle": shuffle}, "model": SMALL,
                     "train": {"progress": False, "device": "cpu", "batch_size": 32, "lr": 3e-3}}  # fmt: skip
        run_id = train_run(RunRequest(PLANTED, "basset", overrides, 0, max_epochs=3, experiment="var"))
        capsys.readouterr()
        assert main(["variants", "--run", run_id, "--input", variants, "--out", str(tmp_path / name)]) == 0
        printed = capsys.readouterr().out
        value, low, high = map(float, re.search(r"variants_auroc: (\S+) \[(\S+), (\S+)\]", printed).groups())
        assert low <= value <= high
        auroc[name] = value
        table = pd.read_csv(tmp_path / name / "variants.tsv", sep="\t")
        assert len(table) == 120 and {"delta", "abs_delta", "logit_ref", "prob_alt"} <= set(table.columns)
        child = mlflow.search_runs(experiment_names=["var"], filter_string=f"tags.`regbench.kind` = 'variants' AND "
                                   f"tags.`mlflow.parentRunId` = '{run_id}'")  # fmt: skip
        assert len(child) == 1 and child["metrics.variants_auroc"].iloc[0] == pytest.approx(value, abs=1e-4)
    assert auroc["trained"] >= 0.8 and auroc["shuffled"] < 0.8, auroc
