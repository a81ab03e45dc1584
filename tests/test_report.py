"""`regbench report` on a temporary MLflow store holding real tiny runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.benchmark.leaderboard import cell_runs, ranked
from harness.reporting.figures import group_auroc_figure, transfer_section
from harness.reporting.write import write_report
from harness.tracking import store
from harness.training.run import RunRequest, train_run

TRAIN = {"progress": False, "device": "cpu"}
DATA = {"n": 200}


def test_report_of_two_models_by_two_seeds(tmp_path: Path) -> None:
    ids = {}
    for model, overrides in (("kmer_logreg", {}), ("kmer_attention", {"k": 3, "d_model": 16, "head_dim": 16})):
        for seed in (0, 1):
            spec = RunRequest(
                "enhancers.synthetic",
                model,
                {"model": overrides, "train": TRAIN, "data": DATA},
                seed=seed,
                max_epochs=1,
                experiment="rep",
            )
            ids[model, seed] = train_run(spec)
    bench = store.record_run("rep", "bench", {"regbench.kind": "benchmark"}, None, "FINISHED")

    out = write_report("rep", tmp_path / "out")
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    runs = store.search_runs("rep")
    auroc = runs.set_index("run_id")["metrics.test_auroc"]
    leaderboard_md = md.split("## Leaderboard: enhancers.synthetic")[1].split("<details>")[0]
    table_rows = [line for line in leaderboard_md.splitlines() if line.startswith("| ") and "kmer_" in line]
    assert len(table_rows) == 2
    means = {m: np.mean([auroc[ids[m, s]] for s in (0, 1)]) for m in ("kmer_logreg", "kmer_attention")}
    best = max(means, key=means.get)
    assert best in table_rows[0] and table_rows[0].split("|")[1].strip() in ("1", "1=")
    low = np.mean([runs.set_index("run_id")["metrics.test_auroc_ci_low"][ids[best, s]] for s in (0, 1)])
    assert f"{means[best]:.3f} [{low:.3f}, " in table_rows[0] and "(n=2)" in table_rows[0]  # mean [mean CI] ± sd
    board, _ = ranked(cell_runs("rep"))
    ranks = {r.split("|")[2].strip(): r.split("|")[1].strip() for r in table_rows}
    assert ranks == board.set_index("model")["group"].to_dict()  # the terminal's ranking, from the paired tests
    assert "## Paired tests" in md and "<h2>Paired tests</h2>" in html and "delong" in md
    for run_id in ids.values():
        assert run_id in md and run_id in html
    assert runs["tags.dataset_digest"].dropna().iloc[0] in md and "synthetic_stratified" in md
    assert "data:image/png;base64," in html and "src='figures/" not in html
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"model_x_task_heatmap.png", "enhancers.synthetic_ROC_and_PR_curves.png"} <= figures
    assert "`" not in html and "<details><summary>runs of these 2 models" in html
    assert "| study file | not recorded |" in md and "| git sha |" in md and "| report machine |" in md
    logged = {f.path for f in store.client().list_artifacts(bench, "report")}
    assert {"report/report.md", "report/report.html"} <= logged


def test_unknown_experiment_is_a_lookup_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="'no-such-study'"):
        write_report("no-such-study", tmp_path)


def test_transfer_matrices_and_group_aurocs_are_drawn(tmp_path: Path) -> None:
    matrix = pd.DataFrame({"train_cell": ["gm12878", "k562"], "gm12878": [0.8, 0.6], "k562": [0.55, 0.9]})
    tags = {"regbench.kind": "transfer", "primary_metric": "auprc", "model": "speid", "seed": 0}
    with store.client_run("epi", "transfer", tags) as run:
        run.table(matrix, "transfer/auprc.csv")
    section = transfer_section("epi", tmp_path)
    assert section is not None and [name for name, _ in section.figures] == ["transfer speid s0: test AUPRC"]
    assert section.figures[0][1].startswith(b"\x89PNG")
    assert transfer_section("empty", tmp_path) is None
    per_label = pd.DataFrame(
        {
            "label": list("abcd"),
            "group": ["TF", "TF", "DNase", "DNase"],
            "auroc": [0.7, 0.8, 0.9, 0.85],
            "auprc": [0.1, 0.2, 0.3, 0.2],
        }
    )
    fig = group_auroc_figure("chromatin.x", {"m1": per_label, "m2": per_label})
    assert [ax.get_title() for ax in fig.axes] == ["DNase (2 labels)", "TF (2 labels)"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["m1", "m2"]


def test_the_run_mlflow_run_opens_for_the_report_holds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlflow run . -e report`: the report goes to reports/<experiment>, and the run MLflow opened for the entry
    point (ended by MLflow afterwards) is not left empty: it holds the report and says where it came from."""
    train_run(RunRequest("enhancers.synthetic", "kmer_logreg", {"train": TRAIN, "data": DATA}, experiment="rep"))
    c = store.client()
    launched = c.create_run("0", tags={"mlflow.project.entryPoint": "report"}).info.run_id
    c.log_param(launched, "experiment", "rep")  # mlflow run logs the -P values
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_RUN_ID", launched)
    out = write_report("rep")
    assert out == Path("reports/rep") and (tmp_path / "reports/rep/report.html").is_file()
    run = c.get_run(launched)
    assert run.data.tags["regbench.kind"] == "report" and run.info.run_name == "report: rep"
    assert {"report/report.md", "report/report.html"} <= {f.path for f in c.list_artifacts(launched, "report")}
    assert "MLFLOW_RUN_ID" not in os.environ
