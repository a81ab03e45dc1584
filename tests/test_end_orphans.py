"""Runs a worker left RUNNING when a search returns: a trial the scheduler stopped (Optuna holds its result) ends
FINISHED even when its worker has not closed its run yet — the race of issue 18 forced here — a lost one KILLED; a
finished trial whose worker was killed ends FINISHED when its study reopens."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna

from harness.tracking import store
from harness.tuning.search import _finish_abandoned_trial_runs, end_orphans


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


def test_a_finished_trial_whose_worker_was_killed_ends_finished_when_the_study_reopens(tmp_path: Path) -> None:
    """SIGKILL between a trial's last report (Optuna: COMPLETE) and its worker closing the run: the next run ends the
    run KILLED as abandoned; reopening the study makes it FINISHED (it is not run again). A FAIL trial's stays
    KILLED."""
    cell = store.record_run("orphans", "cell", {"regbench.kind": "cell"}, None, status="FINISHED")
    done, failed = (_running_run(cell, n) for n in ("done", "failed"))
    for run_id in (done, failed):  # what store.close_abandoned_runs leaves of a dead process's runs
        store.client().set_tag(run_id, "regbench.ended_by", store.ABANDONED)
        store.client().set_terminated(run_id, "KILLED")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize")
    for run_id, state in ((done, optuna.trial.TrialState.COMPLETE), (failed, optuna.trial.TrialState.FAIL)):
        trial = study.ask()
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("epochs", 3)
        study.tell(trial, 0.7 if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    _finish_abandoned_trial_runs(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), max_epochs=3)
    runs = {r.info.run_name: r for r in store.client().search_runs([store.ensure_experiment("orphans")])}
    assert runs["done"].info.status == "FINISHED" and "regbench.stopped_by" not in runs["done"].data.tags
    assert runs["done"].data.tags["regbench.ended_by"].startswith("study driver")
    assert runs["failed"].info.status == "KILLED"
