"""`regbench export` writes a split that `predict`, `evaluate` and a logged model's pyfunc read; `predict` and
`evaluate` warn (one line on stderr) when the input holds training sequences; every `--help` renders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.cli import build_parser, main
from harness.config import parse_overrides
from harness.data.readers import read_sequences
from harness.plugins import make_task
from harness.training.run import RunRequest, train_run

SETS = ["--set", "data.n=240"]


def test_export_formats_read_back(tmp_path: Path) -> None:
    test = make_task("enhancers.synthetic", {"n": 240}).splits()["test"]
    for name in ("test.fa", "test.tsv", "test.csv"):
        assert main(["export", "--task", "enhancers.synthetic", "--out", str(tmp_path / name), *SETS]) == 0
    ids, seqs, _ = read_sequences(tmp_path / "test.fa", labelled=False)
    assert list(ids) == list(test.ids) and len(seqs) == len(test)
    _, tsv_seqs, labels = read_sequences(tmp_path / "test.tsv", labelled=True)
    assert tsv_seqs == seqs and list(labels) == list(test.labels)
    assert list(pd.read_csv(tmp_path / "test.csv").columns) == ["sequence"]


def test_export_of_a_pair_task_writes_enhancer_and_promoter(tmp_path: Path) -> None:
    out = tmp_path / "pairs.tsv"
    assert main(["export", "--task", "epi.synthetic", "--split", "val", "--out", str(out), "--limit", "5"]) == 0
    frame = pd.read_csv(out, sep="\t")
    assert list(frame.columns) == ["id", "enhancer", "promoter", "label"] and len(frame) == 5
    assert main(["export", "--task", "epi.synthetic", "--out", str(tmp_path / "pairs.fa")]) == 2  # no FASTA of pairs


def test_predict_and_evaluate_warn_on_training_sequences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = train_run(RunRequest("enhancers.synthetic", "kmer_logreg", parse_overrides(["data.n=240"])))
    for split in ("train", "test"):
        assert main(["export", "--task", "enhancers.synthetic", "--split", split, "--out",
                     str(tmp_path / f"{split}.tsv"), *SETS]) == 0  # fmt: skip
    capsys.readouterr()
    out = str(tmp_path / "scores.tsv")
    assert main(["predict", "--run", run_id, "--input", str(tmp_path / "train.tsv"), "--output", out]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    n_train = len(make_task("enhancers.synthetic", {"n": 240}).splits()["train"])
    assert lines == [f"regbench predict: warning: {n_train:,} of {n_train:,} input sequences (100%) are in the "
                     f"training split of run {run_id} (enhancers.synthetic, either strand); their scores "
                     "overestimate performance on new data"]  # fmt: skip
    assert main(["evaluate", "--run", run_id, "--input", str(tmp_path / "test.tsv")]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "auroc" in captured.out


def test_every_help_renders_without_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = [[name] for name in parser._subparsers._group_actions[0].choices] + [["lm", "check"]]
    for command in [[], *commands]:
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--help"])
        text = capsys.readouterr().out
        assert "%%" not in text and text.startswith("usage:"), command
