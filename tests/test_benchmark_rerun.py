"""`regbench benchmark --no-resume` recomputes every cell (new search, new refits, the same numbers with the same
seeds); the saved views and the board show each cell once, the latest; the terminal summary is one line per task."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.tracking import store

pytestmark = pytest.mark.slow

STUDY = """\
name: rerun
tasks: [enhancers.synthetic, epi.synthetic]
models: [kmer_logreg, gc_length]
trials: 1
max_epochs: 1
shortcuts: false
task_set:
  enhancers.synthetic: {data.n: 200}
model_set:
  kmer_logreg: {model.k: 3, model.max_iter: 200}
"""


def _count(kind: str) -> int:
    return len(store.search_runs("rerun", f"tags.`regbench.kind` = '{kind}'"))


def _view(key: str) -> list[str]:
    """Run names the UI's saved view `key` lists, in its order (its own filter and sort, run by MLflow)."""
    import json

    experiment = store.client().get_experiment_by_name("rerun")
    state = json.loads(json.loads(experiment.tags[store.SHARED_VIEW_PREFIX + key])["state"])
    order = state["orderByKey"].replace("`", "")
    runs = store.client().search_runs([experiment.experiment_id], state["searchFilter"], order_by=[f"{order} ASC"])
    return [r.info.run_name for r in runs]


def test_no_resume_recomputes_and_views_show_each_cell_once(
    workdir: Path, local_ray: None, capsys: pytest.CaptureFixture
) -> None:
    """Both benchmarks in this process, on one local Ray (`local_ray`)."""
    (workdir / "rerun.yaml").write_text(STUDY)
    assert main(["benchmark", "--study", "rerun.yaml", "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    first = {k: _count(k) for k in ("cell", "trial", "refit")}
    assert first == {"cell": 4, "trial": 4, "refit": 4}
    scores = {r.info.run_name: r.data.tags[store.SCORE_TAG] for r in store.client().search_runs(
        [store.ensure_experiment("rerun")], f"tags.`{store.RANK_TAG}` LIKE '%'")}  # fmt: skip

    # the terminal: a short summary, one line per task, then where everything is; the printed command is runnable
    assert len(out) <= 40, out
    tasks = [line for line in out if line.startswith("  ")]
    assert [line.split()[0] for line in tasks] == ["enhancers.synthetic", "epi.synthetic"]
    assert all(line.split()[1] in ("kmer_logreg", "gc_length") for line in tasks)
    assert out[-4] == "leaderboard: reports/rerun/leaderboard.md" and Path("reports/rerun/leaderboard.md").is_file()
    ui = out[-2]
    command = f"mlflow ui --backend-store-uri {store.tracking_uri()}"
    assert ui.startswith(f"MLflow UI: {command}, then open http://127.0.0.1:5000/#/experiments/"), ui
    assert ui.endswith("/runs?workflowType=machine_learning&viewStateShareKey=regbench-winners")
    assert out[-1].startswith("run_id: ")

    # --no-resume: every cell again, with new trials and refits (none reused), and the same numbers
    assert main(["benchmark", "--study", "rerun.yaml", "--no-progress", "--no-resume"]) == 0
    out = capsys.readouterr().out
    assert "4 cells (4 ran, 0 reused, 0 failed, 0 unable)" in out
    assert {k: _count(k) for k in ("cell", "trial", "refit")} == {"cell": 8, "trial": 8, "refit": 8}
    again = {r.info.run_name: r.data.tags[store.SCORE_TAG] for r in store.client().search_runs(
        [store.ensure_experiment("rerun")], f"tags.`{store.RANK_TAG}` LIKE '%'")}  # fmt: skip
    assert again == scores  # each cell once, the same scores with the same seeds

    # the saved views: every cell once (by task, then rank) and one winner per task
    board = _view(store.LEADERBOARD_VIEW)
    assert len(board) == 4 and len(set(board)) == 4
    assert [name.split(" · ")[1] for name in board] == ["enh.synth", "enh.synth", "epi.synth", "epi.synth"]
    winners = _view(store.WINNERS_VIEW)
    assert [name.split(" · ")[1] for name in winners] == ["enh.synth", "epi.synth"]
    assert [name.split(" · ")[0] for name in winners] == [line.split()[1] for line in tasks]
