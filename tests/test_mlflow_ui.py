"""What the MLflow UI shows, checked in a real SQLite store: the experiment kind, `test_primary` on every scored
run, the benchmark run's description and leaderboard table, a cell that cannot run, one benchmark run per study
file, and `regbench train`'s closing summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.benchmark.cross import STATUS_TAG, run_benchmark
from harness.benchmark.leaderboard import display, to_markdown
from harness.cli import main
from harness.tracking import store

TASK = "enhancers.synthetic"


def logged_table(experiment: str, run_id: str) -> pd.DataFrame:
    """The run's `leaderboard.json` as MLflow reads an MLflow table back."""
    return store.client().load_table(store.ensure_experiment(experiment), "leaderboard.json", run_ids=[run_id])


def test_experiments_are_model_training_experiments(tracking_uri: str) -> None:
    created = store.client().get_experiment(store.ensure_experiment("fresh"))
    assert created.tags[store.EXPERIMENT_KIND_TAG] == "custom_model_development" == store.EXPERIMENT_KIND
    c = store.client()
    old = c.create_experiment("old")  # made before regbench tagged experiments
    guessed = c.create_experiment("guessed", tags={store.EXPERIMENT_KIND_TAG: "genai_development_inferred"})
    chosen = c.create_experiment("chosen", tags={store.EXPERIMENT_KIND_TAG: "genai_development"})
    for name in ("old", "guessed", "chosen"):
        store.ensure_experiment(name)
    kinds = {e: c.get_experiment(e).tags.get(store.EXPERIMENT_KIND_TAG) for e in (old, guessed, chosen)}
    assert kinds == {old: store.EXPERIMENT_KIND, guessed: store.EXPERIMENT_KIND, chosen: "genai_development"}
    view_tag = store.SHARED_VIEW_PREFIX + store.LEADERBOARD_VIEW
    for experiment in (created.experiment_id, old):
        view = json.loads(c.get_experiment(experiment).tags[view_tag])
        state = json.loads(view["state"])
        assert view["name"] == "regbench leaderboard" and state["orderByKey"] == f"tags.`{store.ORDER_TAG}`"
        assert state["selectedColumns"][:3] == [f"tags.`{store.RANK_TAG}`", f"tags.`{store.SCORE_TAG}`", "tags.`model`"]
        assert state["orderByAsc"] and state["searchFilter"] == f"tags.`{store.RANK_TAG}` LIKE '%'"
        assert not any(c.startswith("attributes.") for c in state["selectedColumns"])
    winners_tag = store.SHARED_VIEW_PREFIX + store.WINNERS_VIEW
    winners = json.loads(json.loads(c.get_experiment(old).tags[winners_tag])["state"])
    assert winners["searchFilter"] == f"tags.`{store.WINNER_TAG}` = 'yes'"
    # beside the pinned run name and date: the score and the ties, then the rest; Duration moved out of their way
    shown = [f"tags.`{store.SCORE_TAG}`", f"tags.`{store.TIED_TAG}`", "tags.`task`"]
    assert winners["columnOrder"] == ["attributes.`Run Name`", "runDateAndNestInfo", *shown, "duration"]
    # at 1366 px with the Assistant panel open the grid spans x = 222..985 and its checkbox column is 73 px wide:
    # the ties start at least 150 px (two model names) left of the panel (bench/ui_check.py looks at the page)
    assert 222 + 73 + sum(winners["columnWidths"][k] for k in winners["columnOrder"][:3]) <= 985 - 150
    outdated = json.loads(c.get_experiment(old).tags[winners_tag]) | {"state": "{}"}  # an earlier regbench's view
    c.set_experiment_tag(old, winners_tag, json.dumps(outdated))
    c.set_experiment_tag(old, view_tag, "edited in the UI")
    store.ensure_experiment("old")
    assert c.get_experiment(old).tags[view_tag] == "edited in the UI"  # a view the user changed stays theirs
    assert json.loads(c.get_experiment(old).tags[winners_tag])["state"] == json.dumps(winners)  # updated
    link = store.leaderboard_link(old)
    assert link.endswith(f"/runs?workflowType=machine_learning&viewStateShareKey={store.WINNERS_VIEW}")
    assert store.ui_address(old) == f"http://127.0.0.1:5000/{link}"
    assert store.ui_command() == f"mlflow ui --backend-store-uri {tracking_uri}"


def test_ui_address_on_a_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999/")  # only the address is built: no server
    assert store.ui_address("7") == f"http://127.0.0.1:5999/{store.leaderboard_link('7')}"
    assert store.ui_command() is None


def test_reopened_run_gets_one_table_and_a_description() -> None:
    tags = {"regbench.kind": "benchmark", "study_name": "s", "regbench.study_digest": "d1"}
    reuse = ("regbench.kind", "study_name", "regbench.study_digest")
    ids = []
    for rows in ([{"model": "a", "score": "old"}], [{"model": "a", "score": "x"}, {"model": "b", "score": "z"}]):
        with store.client_run("s", "s", tags, reuse=reuse) as bench:
            bench.ui_table(pd.DataFrame(rows), "leaderboard.json")
            bench.description(f"# s\n\n{len(rows)} rows")
            ids.append(bench.run_id)
    with store.client_run("s", "s", {**tags, "regbench.study_digest": "d2"}, reuse=reuse) as other:
        pass
    assert ids[0] == ids[1] != other.run_id
    run = store.client().get_run(ids[0])
    assert run.info.status == "FINISHED" and run.data.tags[store.NOTE_TAG] == "# s\n\n2 rows"
    assert json.loads(run.data.tags["mlflow.loggedArtifacts"]) == [{"path": "leaderboard.json", "type": "table"}]
    table = logged_table("s", ids[0])
    assert table.to_dict("records") == [{"model": "a", "score": "x"}, {"model": "b", "score": "z"}]
    with pytest.raises(ValueError, match=r"not 'x\.csv'"):
        store.ClientRun(ids[0]).ui_table(pd.DataFrame(), "x.csv")


def test_train_logs_test_primary_and_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--task", TASK, "--model", "kmer_logreg", "--set", "data.n=120", "--set", "model.k=3",
            "--experiment", "ui"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    run_id = lines[-1].removeprefix("run_id: ")
    run = store.client().get_run(run_id)
    metrics = run.data.metrics
    for end in ("", "_ci_low", "_ci_high"):
        assert metrics[f"test_primary{end}"] == metrics[f"test_auroc{end}"]
    low, point, high = (f"{metrics[f'test_auroc{end}']:.3f}" for end in ("_ci_low", "", "_ci_high"))
    assert lines[-6].startswith(f"test auroc: {point} [{low}, {high}] (95% CI)   (val ")
    assert lines[-5].startswith(f"time: {metrics['wall_time_s']:.1f} s (")
    assert lines[-4] == f"params: {metrics['n_params']:,.0f}"
    uri = run.data.tags[store.MODEL_URI_TAG]
    assert lines[-3] == f"model: {uri}" and uri.startswith("models:/")
    assert store.client().get_logged_model(uri.removeprefix("models:/")).name == "enhancers-synthetic__kmer_logreg"
    assert lines[-2] == (f"score with it: regbench export --task {TASK} --set data.n=120 --split test --out seqs.csv "
                         f"&& MLFLOW_TRACKING_URI={store.tracking_uri()} mlflow models predict -m {uri} -i seqs.csv "
                         "-t csv --env-manager local")  # fmt: skip
    assert store.client().get_experiment_by_name("ui").tags[store.EXPERIMENT_KIND_TAG] == store.EXPERIMENT_KIND


UNABLE_STUDY = """\
name: ui
tasks: [enhancers.synthetic]
models: [kmer_logreg, targetfinder_gbm]
trials: 1
max_epochs: 1
shortcuts: false  # only the listed models
task_set:
  enhancers.synthetic: {data.n: 120}
model_set:
  kmer_logreg: {model.k: 3, model.max_iter: 200}
"""


@pytest.mark.slow
def test_benchmark_as_the_ui_shows_it(workdir: Path) -> None:
    """A cell that cannot run (a feature-table model on a sequence task) is a FINISHED, metric-less run tagged
    unable; the benchmark run's description is the leaderboard; re-running the file adds no run at all."""
    (workdir / "ui.yaml").write_text(UNABLE_STUDY)
    first = run_benchmark(workdir / "ui.yaml", progress=False)
    assert [(c.model, c.status) for c in first.cells] == [("kmer_logreg", "finished"), ("targetfinder_gbm", "unable")]
    runs = store.search_runs("ui")
    assert set(runs["status"]) == {"FINISHED"}  # no red FAILED run anywhere
    cells = runs[runs["tags.regbench.kind"] == "cell"].set_index("tags.model")
    unable = cells.loc["targetfinder_gbm"]
    assert unable[f"tags.{STATUS_TAG}"] == "unable" and "feature table" in unable["tags.regbench.skip_reason"]
    assert unable["tags.mlflow.note.content"].startswith("**Cannot run**")
    assert pd.isna(unable["metrics.test_primary"])
    done = cells.loc["kmer_logreg"]
    assert done["metrics.test_primary"] == done["metrics.test_auroc_mean"]  # one seed: its refit's score and CI
    assert done["metrics.test_primary_ci_low"] <= done["metrics.test_primary"] <= done["metrics.test_primary_ci_high"]

    bench = store.client().get_run(first.run_id)
    markdown = Path(store.client().download_artifacts(first.run_id, "leaderboard.md", str(workdir))).read_text()
    assert markdown == f"# ui\n\n{first.markdown}"
    link = store.leaderboard_link(bench.info.experiment_id, store.LEADERBOARD_VIEW)
    note = bench.data.tags[store.NOTE_TAG]
    assert note.startswith("# ui\n\n**Winner per task**") and len(note) <= 8000
    assert "| enhancers.synthetic | **kmer_logreg** | auroc " in note
    assert f"## Leaderboard\n\n{to_markdown(display(first.leaderboard))}" in note
    assert f"[Every cell by task and rank]({link})" in note
    assert "models:/regbench.ui.enhancers.synthetic@best" in note  # the winner, registered with its alias
    table = logged_table("ui", first.run_id)
    shown = display(first.leaderboard)
    assert list(table.columns) == list(shown.columns)
    text = ["task", "model", "test score", "note"]  # read_json turns numeric-looking strings back into numbers
    assert table[text].fillna("").to_dict("records") == shown[text].to_dict("records")
    board = first.leaderboard.set_index("model")
    assert board.loc["targetfinder_gbm", "status"] == "unable" and "| unable |" in markdown

    again = run_benchmark(workdir / "ui.yaml", progress=False)
    assert again.run_id == first.run_id
    assert [(c.status, c.run_id) for c in again.cells] == [("reused", first.cells[0].run_id),
                                                           ("unable", first.cells[1].run_id)]  # fmt: skip
    assert len(store.search_runs("ui")) == len(runs)
    assert logged_table("ui", first.run_id).shape == table.shape
