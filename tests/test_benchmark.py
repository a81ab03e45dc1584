"""A tiny real benchmark: benchmark → cell → trial runs, leaderboard artifacts, a failing cell, resume. The
benchmarks run in this process on one local Ray for the module (`local_ray`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.benchmark.comparisons import COLUMNS
from harness.benchmark.cross import run_benchmark
from harness.benchmark.study_file import StudyFileError
from harness.cli import main
from harness.reporting.write import write_report
from harness.tracking import store
from tests.test_variants import HEADER, variant_rows, write

SYNTHETIC = """\
name: tiny
tasks: [enhancers.synthetic]
models: [kmer_logreg, kmer_attention]
seeds: [0, 1]
trials: 1
max_epochs: 1
shortcuts: false  # only the listed models
task_set:
  enhancers.synthetic: {data.n: 120}
model_set:
  kmer_logreg: {model.k: 3, model.max_iter: 200}
  kmer_attention: {model.k: 3, model.d_model: 16, model.head_dim: 16}
"""
# Variant sets every refit is scored on (written by `write_variant_sets`): one with labels, one with effects only.
VARIANTS = """\
variants:
  - {name: ctcf, path: ctcf.tsv}
  - {path: effects.tsv}
"""
# The same cells plus a task whose data file is missing: validation passes, both of its cells fail at run time.
WITH_FAILING = SYNTHETIC.replace("[enhancers.synthetic]", "[enhancers.synthetic, enhancers.files]").replace(
    "model_set:", "  enhancers.files: {data.train: /nonexistent/train.tsv}\nmodel_set:"
)


def runs_by_kind(experiment: str) -> dict[str, pd.DataFrame]:
    runs = store.search_runs(experiment)
    return {kind: group for kind, group in runs.groupby("tags.regbench.kind")}


def write_variant_sets(folder: Path) -> None:
    """`ctcf.tsv` (label: a variant that breaks a planted motif, or background) and `effects.tsv` (the same variants
    with a made-up effect instead), 40 variants on 200 bp sequences (`tests.test_variants`)."""
    rows = variant_rows(np.random.default_rng(3), 20)
    write(folder / "ctcf.tsv", rows)
    effects = [f"{r.rsplit(chr(9), 1)[0]}\t{float(r[-1]) + 0.1 * i:.2f}" for i, r in enumerate(rows)]
    write(folder / "effects.tsv", effects, HEADER.replace("label", "effect"))


@pytest.mark.slow
def test_benchmark_hierarchy_leaderboard_failures_and_resume(workdir: Path, local_ray: None) -> None:
    write_variant_sets(workdir)
    (workdir / "tiny.yaml").write_text(WITH_FAILING + VARIANTS)
    result = run_benchmark(workdir / "tiny.yaml", progress=False)

    status = {(c.task, c.model): c.status for c in result.cells}
    assert status == {("enhancers.synthetic", "kmer_logreg"): "finished", ("enhancers.synthetic", "kmer_attention"):
                      "finished", ("enhancers.files", "kmer_logreg"): "failed", ("enhancers.files", "kmer_attention"):
                      "failed"}, [c.reason for c in result.cells]  # fmt: skip
    runs = runs_by_kind("tiny")
    bench = runs["benchmark"]
    assert bench["run_id"].tolist() == [result.run_id]
    assert bench["tags.mlflow.runName"].iloc[0] == "tiny" and bench["status"].iloc[0] == "FINISHED"
    cells = runs["cell"].set_index("run_id")
    assert set(cells.index) == {c.run_id for c in result.cells}
    assert (cells["tags.mlflow.parentRunId"] == result.run_id).all()
    finished = cells[cells["status"] == "FINISHED"]
    assert len(finished) == 2 and set(runs["trial"]["tags.mlflow.parentRunId"]) == set(finished.index)
    assert finished["metrics.test_auroc_mean"].between(0, 1).all()
    refits = runs["refit"]  # one per evaluation seed under each finished cell, after its one search
    assert refits.groupby("tags.mlflow.parentRunId")["tags.seed"].apply(sorted).to_dict() == {
        c: ["0", "1"] for c in finished.index
    }
    assert (refits["tags.regbench.benchmark_run_id"] == result.run_id).all() and refits["tags.ray_node_id"].all()
    assert len(runs["trial"]) == 2  # one search per cell, not one per seed
    for kind in ("trial", "refit"):  # cells run side by side in one Ray job: each trial and refit is its own cell's
        owner = cells.loc[runs[kind]["tags.mlflow.parentRunId"]]
        assert (runs[kind]["tags.model"].to_numpy() == owner["tags.model"].to_numpy()).all()
        assert (runs[kind]["tags.study_name"].to_numpy() == owner["tags.study_name"].to_numpy()).all()
    # one Tune run for the benchmark: its trial processes (tag regbench.process) outlive a cell and serve the next
    work = pd.concat([runs["trial"], runs["refit"]])
    cells_per_process = work.groupby("tags.regbench.process")["tags.mlflow.parentRunId"].nunique()
    assert len(cells_per_process) < len(work) and cells_per_process.max() == 2, cells_per_process
    intervals = sorted(zip(finished["start_time"], finished["end_time"], strict=True))
    assert intervals[1][0] < intervals[0][1], "the two finished cells ran one after the other"
    assert 0 < bench["metrics.slot_utilization"].iloc[0] <= 1 and result.slot_utilization > 0
    failed = cells[cells["status"] == "FAILED"]
    assert len(failed) == 2 and failed["tags.regbench.skip_reason"].str.contains("/nonexistent/train.tsv").all()
    error = Path(store.client().download_artifacts(failed.index[0], "error.txt", str(workdir))).read_text()
    assert error.startswith("Traceback") and "DataNotFoundError" in error

    logged = pd.read_csv(store.client().download_artifacts(result.run_id, "leaderboard.csv", str(workdir)))
    assert len(logged) == 4 and list(logged.columns) == list(result.leaderboard.columns)
    board = result.leaderboard.set_index("model")
    ok = board[board["task"] == "enhancers.synthetic"]
    assert (ok["status"] == "ok").all() and sorted(ok["rank"]) == [1, 2]
    attention = refits[refits["tags.model"] == "kmer_attention"]
    assert set(ok.loc["kmer_attention", "run_ids"].split(",")) == set(attention["run_id"])
    assert ok.loc["kmer_attention", "test_primary"] == pytest.approx(attention["metrics.test_auroc"].mean())
    assert ok.loc["kmer_attention", "n_seeds"] == 2
    assert ok.loc["kmer_attention", "test_primary"] == pytest.approx(
        cells.loc[attention["tags.mlflow.parentRunId"].iloc[0], "metrics.test_auroc_mean"]
    )
    assert (board[board["task"] == "enhancers.files"]["status"] == "failed").all()
    markdown = Path(store.client().download_artifacts(result.run_id, "leaderboard.md", str(workdir))).read_text()
    assert markdown == f"# tiny\n\n{result.markdown}" and "/nonexistent/train.tsv does not exist" in markdown
    paired = pd.read_csv(store.client().download_artifacts(result.run_id, "comparisons.csv", str(workdir)))
    assert list(paired.columns) == list(COLUMNS) and len(paired) == 4  # one pair: DeLong, 2 bootstraps, McNemar
    assert set(paired["model_a"]) | set(paired["model_b"]) == {"kmer_logreg", "kmer_attention"}
    assert paired["p_adjusted"].between(0, 1).all() and "## Paired tests of the primary metric" in markdown
    assert set(ok["group"]) in ({"1", "2"}, {"1="})  # the paired DeLong test groups them

    # Variant sets: every refit scored once on each (nested variants runs), one board per set, ranked by its test.
    scored = runs["variants"]
    assert len(scored) == 8 and set(scored["tags.mlflow.parentRunId"]) == set(refits["run_id"])
    assert "## Variant effects" in markdown and "### ctcf" in markdown and "### effects" in markdown
    variants = pd.read_csv(store.client().download_artifacts(result.run_id, "variant_board.csv", str(workdir)))
    tests = pd.read_csv(store.client().download_artifacts(result.run_id, "variant_tests.csv", str(workdir)))
    assert set(variants["metric"]) == {"auroc of |Δ|", "spearman of Δ"} and (variants["n_seeds"] == 2).all()
    assert ((variants["ci_low"] <= variants["value"]) & (variants["value"] <= variants["ci_high"])).all()
    assert dict(zip(tests["variant_set"], tests["test"], strict=True)) == {"ctcf": "delong",
                                                                           "effects": "paired_bootstrap"}  # fmt: skip
    for name, of_set in variants.groupby("variant_set"):  # "=" only from a test that ran and found no difference
        tied = tests.loc[tests["variant_set"] == name, "p_adjusted"].iloc[0] >= 0.05
        assert sorted(of_set["rank"].astype(str)) == (["1=", "1="] if tied else ["1", "2"]), of_set
    report = write_report("tiny", workdir / "report").joinpath("report.md").read_text()
    assert "## Variant effects" in report and "2 paired tests" in report

    # Resume: the finished cells are reused (no new cell or trial runs), only the failed task would run again.
    (workdir / "again.yaml").write_text(SYNTHETIC + VARIANTS)
    again = run_benchmark(workdir / "again.yaml", progress=False)
    assert [c.status for c in again.cells] == ["reused", "reused"]
    assert {c.run_id for c in again.cells} == set(finished.index)
    after = runs_by_kind("tiny")
    assert len(after["cell"]) == 4 and len(after["trial"]) == len(runs["trial"]) and len(after["benchmark"]) == 2
    assert len(after["refit"]) == len(refits)
    assert again.leaderboard["test_primary"].tolist() == ok["test_primary"].tolist()
    assert set(after["variants"]["run_id"]) == set(scored["run_id"]) and "### effects" in again.markdown  # not rescored


def test_bad_study_fails_before_any_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "bad.yaml"
    path.write_text(SYNTHETIC.replace("trials: 1", "trials: 0"))
    with pytest.raises(StudyFileError, match=r"bad\.yaml:5: trials='0'"):
        run_benchmark(path, progress=False)
    assert main(["benchmark", "--study", str(path)]) == 2
    assert f"regbench benchmark: error: {path}:5: trials='0'" in capsys.readouterr().err
    assert store.search_runs("tiny").empty


@pytest.mark.slow
def test_resources_no_node_has_fail_before_any_run(
    workdir: Path, local_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gpus_per_trial` (or CPUs) beyond every node of the cluster, or `--workers-per-trial` beyond the cluster: a
    clear error naming the resources, no run, no hang."""
    path = workdir / "gpu.yaml"
    path.write_text(SYNTHETIC.replace("trials: 1", "trials: 1\ngpus_per_trial: 1"))
    (workdir / "tiny.yaml").write_text(SYNTHETIC)
    assert main(["benchmark", "--study", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"gpus_per_trial=1: no node of the Ray cluster has that much \(nodes: [\d.]+: 2 CPU, 0 GPU\)", err)
    assert "Traceback" not in err and store.search_runs("tiny").empty
    # Ray Train workers per trial beyond what the cluster holds at once
    assert main(["benchmark", "--study", str(workdir / "tiny.yaml"), "--no-progress", "--workers-per-trial", "3"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"workers_per_trial=3 × \(cpus_per_trial=1, gpus_per_trial=0\): the Ray cluster holds 2 such "
                     r"workers at once \(nodes: [\d.]+: 2 CPU, 0 GPU\)", err), err  # fmt: skip
    assert "Traceback" not in err and store.search_runs("tiny").empty


SPLITS = """\
name: splits
tasks: [epi.synthetic]
models: [kmer_logreg]
splits: [chromosome, random]
trials: 2
max_epochs: 1
shortcuts: false  # only the listed models
model_set:
  kmer_logreg: {model.k: 3, model.max_iter: 200}
"""


@pytest.mark.slow
def test_splits_run_side_by_side_and_resume(workdir: Path, local_ray: None) -> None:
    """A tiny study on `epi.synthetic` under both split protocols: nested runs, side-by-side leaderboard, resume."""
    (workdir / "splits.yaml").write_text(SPLITS)
    result = run_benchmark(workdir / "splits.yaml", progress=False)
    assert [(c.split, c.status) for c in result.cells] == [("chromosome", "finished"), ("random", "finished")]
    runs = runs_by_kind("splits")
    cells = runs["cell"].set_index("run_id")
    assert sorted(cells["tags.split_protocol"]) == ["chromosome", "random"]
    assert sorted(cells["tags.mlflow.runName"]) == ["kmer_logreg · epi.synth[chromosome]",
                                                    "kmer_logreg · epi.synth[random]"]  # fmt: skip
    refits = runs["refit"].set_index("run_id")
    assert cells["tags.regbench.cell_config"].nunique() == 2
    assert runs["trial"]["tags.mlflow.parentRunId"].value_counts().to_dict() == {c: 2 for c in cells.index}
    board = result.leaderboard.set_index("split_protocol")
    assert board["rank"].tolist() == [1, 1] and board["primary_metric"].tolist() == ["auprc", "auprc"]
    for split in ("chromosome", "random"):
        run_id = board.loc[split, "run_ids"]
        assert refits.loc[run_id, "tags.split_protocol"] == split
        assert board.loc[split, "test_primary"] == pytest.approx(refits.loc[run_id, "metrics.test_auprc"])
    side = pd.read_csv(store.client().download_artifacts(result.run_id, "split_comparison.csv", str(workdir)))
    assert list(side.columns) == ["task", "model", "test auprc [chromosome]", "test auprc [random]", "gap"]
    assert side["test auprc [random]"].iloc[0].startswith(f"{board.loc['random', 'test_primary']:.3f} [")
    gap = board["test_primary"].max() - board["test_primary"].min()
    assert side["gap"].iloc[0] == pytest.approx(gap, abs=5e-4)
    assert "## Split protocols side by side" in result.markdown
    report = (write_report("splits", workdir / "report", log_to_benchmark=False) / "report.md").read_text()
    assert "Leaderboard: epi.synthetic [chromosome]" in report and "Leaderboard: epi.synthetic [random]" in report
    assert "Split protocols side by side" in report

    again = run_benchmark(workdir / "splits.yaml", progress=False)
    assert [(c.split, c.status) for c in again.cells] == [("chromosome", "reused"), ("random", "reused")]
    assert len(runs_by_kind("splits")["trial"]) == 4
    assert again.run_id == result.run_id and len(runs_by_kind("splits")["benchmark"]) == 1  # the same study file


@pytest.mark.slow
def test_a_benchmark_whose_every_cell_fails_still_writes_its_board_and_report(workdir: Path, local_ray: None) -> None:
    text = WITH_FAILING.replace("[enhancers.synthetic, enhancers.files]", "[enhancers.files]")
    text = text.replace("tiny", "allfail").replace("  enhancers.synthetic: {data.n: 120}\n", "")
    (workdir / "allfail.yaml").write_text(text)
    result = run_benchmark(workdir / "allfail.yaml", progress=False)
    assert {c.status for c in result.cells} == {"failed"} and len(result.cells) == 2
    assert (result.leaderboard["status"] == "failed").all() and result.comparisons.empty
    assert "/nonexistent/train.tsv does not exist" in result.markdown
    report = write_report("allfail", workdir / "report", log_to_benchmark=False)
    html = (report / "report.html").read_text()
    assert "/nonexistent/train.tsv does not exist" in html
