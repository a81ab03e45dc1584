"""Runs a worker left RUNNING when a search returns: a trial the scheduler stopped (Optuna holds its result) ends
FINISHED even when its worker has not closed its run yet — the race of issue 18 forced here — a lost one KILLED."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna

from harness.tracking import store
from harness.tuning.search import end_orphans


def _running_run(cell: str, name: str) -> str:
    return store.client().create_run(store.ensure_experiment("orphans"), run_name=name,
                                     tags={store.PARENT_TAG: cell}).info.run_id  # fmt: skip


def test_stopped_trials_end_finished_and_lost_ones_killed(tmp_path: Path) -> None:
    cell = store.record_run("orphans", "cell", {"regbench.kind": "cell"}, None, status="FINISHED")
    stopped, lost, closing = (_running_run(cell, n) for n in ("stopped", "lost", "closing"))
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize")
    for run_id, value, epochs in ((stopped, 0.7, 1), (closing, 0.8, 3)):  # ASHA stopped one after 1 of 3 epochs
        trial = study.ask()
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("epochs", epochs)
        study.tell(trial, value)
    trial = study.ask()
    trial.set_user_attr("mlflow_run_id", lost)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def worker_closes_late() -> None:  # the stopped trial's worker ends its own run after the search returned
        time.sleep(1.0)
        store.client().set_terminated(closing, "FINISHED")

    late = threading.Thread(target=worker_closes_late)
    late.start()
    end_orphans("orphans", cell, study, max_epochs=3)
    late.join()
    runs = {r.info.run_name: r for r in store.client().search_runs([store.ensure_experiment("orphans")])}
    assert runs["stopped"].info.status == "FINISHED" and runs["stopped"].data.tags["regbench.stopped_by"] == "scheduler"
    assert runs["closing"].info.status == "FINISHED" and "regbench.ended_by" not in runs["closing"].data.tags
    assert runs["lost"].info.status == "KILLED" and runs["lost"].data.tags["regbench.ended_by"] == "study driver"
