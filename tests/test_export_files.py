"""Exported splits keep the records' own ids; one spelling of the TSV columns; quick-start outputs are ignored."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from tests.conftest import random_seqs

ROOT = Path(__file__).resolve().parents[1]


def test_export_ids_are_the_records_own(tmp_path: Path, rng: np.random.Generator) -> None:
    for name, n in (("pos", 20), ("neg", 20)):
        (tmp_path / f"{name}.fa").write_text(
            "".join(f">{name}_{i} some description\n{s}\n" for i, s in enumerate(random_seqs(rng, n, 50)))
        )
    with (tmp_path / "neg.fa").open("a") as f:  # the same record id in both files: ids stay unique
        f.write(f">pos_0\n{random_seqs(rng, 1, 50)[0]}\n")
    train = f"data.train=1:{tmp_path}/pos.fa,0:{tmp_path}/neg.fa"
    for split in ("train", "val", "test"):
        out = tmp_path / f"{split}.fa"
        assert main(["export", "--task", "enhancers.files", "--split", split, "--out", str(out), "--set", train]) == 0
        ids = [line[1:] for line in out.read_text().splitlines() if line.startswith(">")]
        assert ids and len(set(ids)) == len(ids)
        own = [i for i in ids if ":" not in i]
        assert all(i.split("_")[0] in ("pos", "neg") for i in own), ids
        assert set(ids) - set(own) <= {"pos.fa:pos_0", "neg.fa:pos_0"}, ids
    out = tmp_path / "test.tsv"
    assert main(["export", "--task", "enhancers.files", "--out", str(out), "--set", train]) == 0
    assert out.read_text().splitlines()[0] == "sequence\tlabel"  # the spelling of the help and the docs


@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_help_names_the_sequence_column(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "sequence" in text and "seq<TAB>" not in text and "seq," not in text


def test_quick_start_outputs_are_ignored_by_git() -> None:
    names = ["test.fa", "test.tsv", "scores.tsv", "seqs.csv", "mlflow.db", "optuna.db", "reports/x/report.html"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == names
