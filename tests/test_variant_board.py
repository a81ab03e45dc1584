"""A study file's `variants:` key: every refit of a tiny benchmark (a regression task from an MPRA-style table,
two models) scored on a labelled and an effect-only variant set, the variant-effect boards in `leaderboard.md`
and the report, a re-run that scores nothing again, and bad entries named by study file line before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.benchmark.cross import run_benchmark
from harness.benchmark.study_file import StudyFileError, load_study
from harness.cli import main
from harness.tracking import store
from tasks.activity import generate
from tests.test_variants import HEADER, variant_rows, write

STUDY = """\
name: vboard
tasks: [enhancers.files]
models: [kmer_logreg, gc_length]
trials: 1
max_epochs: 1
shortcuts: false
task_set:
  enhancers.files: {{data.train: {table}}}
model_set:
  kmer_logreg: {{model.k: 3}}
variants:
  - {{name: ctcf, path: ctcf.tsv}}
  - {{path: effects.tsv}}
"""


def _variant_runs() -> pd.DataFrame:
    return store.search_runs("vboard", "tags.`regbench.kind` = 'variants'")


@pytest.mark.slow
def test_every_refit_is_scored_on_each_set_ranked_on_the_board_and_not_rescored(
    workdir: Path,
) -> None:
    seqs, activity, _ = generate(300, 200, 0.3, 5)
    table = workdir / "activity.tsv"
    table.write_text("sequence\tactivity\n" + "".join(f"{s}\t{a:.3f}\n" for s, a in zip(seqs, activity, strict=True)))
    rows = variant_rows(np.random.default_rng(3), 20)
    write(workdir / "ctcf.tsv", rows)
    effects = [f"{r.rsplit(chr(9), 1)[0]}\t{float(r[-1]) + 0.1 * i:.2f}" for i, r in enumerate(rows)]
    write(workdir / "effects.tsv", effects, HEADER.replace("label", "effect"))
    (workdir / "study.yaml").write_text(STUDY.format(table=table))

    assert main(["benchmark", "--study", "study.yaml", "--no-progress"]) == 0
    scored = _variant_runs()
    refits = store.search_runs("vboard", "tags.`regbench.kind` = 'refit'")
    assert len(scored) == 4 and set(scored["tags.mlflow.parentRunId"]) == set(refits["run_id"])
    assert sorted(scored["tags.variants_set"]) == ["ctcf", "ctcf", "effects", "effects"]
    board = Path("reports/vboard/leaderboard.md").read_text()
    assert "| kmer_logreg | 1 | spearman |" in board  # the regression task's own board, ranked by Δρ
    assert "## Variant effects" in board and "### ctcf" in board and "### effects" in board
    assert "| delong |" in board and "| paired_bootstrap |" in board
    bench = store.search_runs("vboard", "tags.`regbench.kind` = 'benchmark'")["run_id"].iloc[0]
    got = pd.read_csv(store.download_artifact(bench, "variant_board.csv", workdir / "a"))
    tests = pd.read_csv(store.download_artifact(bench, "variant_tests.csv", workdir / "b"))
    assert set(got["metric"]) == {"auroc of |Δ|", "spearman of Δ"} and got["value"].between(-1, 1).all()
    assert (got["ci_low"] <= got["value"]).all() and (got["value"] <= got["ci_high"]).all()
    assert dict(zip(tests["variant_set"], tests["test"], strict=True)) == {"ctcf": "delong",
                                                                           "effects": "paired_bootstrap"}  # fmt: skip
    for name, rows_of_set in got.groupby("variant_set"):  # "=" only from a test that ran and found no difference
        tied = tests.loc[tests["variant_set"] == name, "p_adjusted"].iloc[0] >= 0.05
        assert sorted(rows_of_set["rank"].astype(str)) == (["1=", "1="] if tied else ["1", "2"]), rows_of_set
    report = Path("reports/vboard/report.md").read_text()
    assert "Variant effects" in report and "ctcf" in report

    again = run_benchmark(workdir / "study.yaml", progress=False)  # the cells reused, the sets not scored again
    assert {c.status for c in again.cells} == {"reused"} and set(_variant_runs()["run_id"]) == set(scored["run_id"])
    assert "### ctcf" in again.markdown and "### effects" in again.markdown


def test_a_bad_variant_file_is_named_by_the_study_line_before_any_work(tmp_path: Path) -> None:
    write(tmp_path / "v.tsv", ["a\tACGTACGT\t2\tC\tG\t1", "b\tACGTACGT\t3\tGT\tG\t0"])
    study = tmp_path / "s.yaml"
    study.write_text("tasks: [enhancers.synthetic]\nmodels: [kmer_logreg]\nvariants:\n  - {path: v.tsv}\n")
    with pytest.raises(StudyFileError, match=r"s.yaml:4: variants entry 'v': variants file .*v.tsv: 1 indel\(s\) "
                       r"refused .* e.g. line 3 \(id b\)"):  # fmt: skip
        load_study(study)
    study.write_text(study.read_text() + "  - {path: v.tsv}\n")
    with pytest.raises(StudyFileError, match=r"s.yaml:5: variants: name 'v' is listed twice"):
        write(tmp_path / "v.tsv", ["a\tACGTACGT\t2\tC\tG\t1"])
        load_study(study)
