"""The benchmark's one searcher keeps cells apart: each search job's trials come from its own Optuna study within its
concurrency, refits go first, results reach only their own job, a job whose storage fails fails alone, and FINISHED
comes only once the service is closed and every job has ended (no Ray needed: Tune's calls made by hand)."""

from __future__ import annotations

from pathlib import Path

import optuna

from harness.tuning.jobs import JOB, JobScheduler, JobSearcher, RefitJob, SearchJob, add_job
from harness.tuning.refit import RefitResult
from harness.tuning.trial import BEST_VAL, TrialContext


def _ctx(study: str) -> TrialContext:
    return TrialContext(task="enhancers.synthetic", model="kmer_attention", fixed={}, seed=0, max_epochs=2, threads=1,
                        experiment="jobs", study_name=study, parent_run_id=f"run-{study}")  # fmt: skip


def _search(tmp_path: Path, study: str, n_new: int, concurrency: int, storage: str = "") -> SearchJob:
    url = storage or f"sqlite:///{tmp_path / 'optuna.db'}"
    return SearchJob(key=f"{study}/search", ctx=_ctx(study), storage=url, n_new=n_new, concurrency=concurrency,
                     n_startup_trials=2, metric="val_auroc", early_stopping=True)  # fmt: skip


def test_jobs_are_served_apart_refits_first_and_finished_only_when_closed(tmp_path: Path) -> None:
    searcher, scheduler = JobSearcher(), JobScheduler()
    add_job(_search(tmp_path, "a", n_new=2, concurrency=1), searcher, scheduler)
    add_job(_search(tmp_path, "b", n_new=1, concurrency=1), searcher, scheduler)
    first, second, third = (searcher.suggest(t) for t in ("t1", "t2", "t3"))
    assert first[JOB].job == "a/search" and second[JOB].job == "b/search" and third is None  # a's concurrency: 1
    assert first[JOB].seed is None and {"model.dropout", "train.lr", "trial_number"} <= set(first)
    add_job(RefitJob("c/refits", _ctx("c"), {"model": {}, "train": {}}, seeds=(0, 1)), searcher, scheduler)
    assert [searcher.suggest(t)[JOB].seed for t in ("r0", "r1")] == [0, 1]  # refits before a's next trial

    searcher.on_trial_result("t1", {BEST_VAL: 0.6, "training_iteration": 1})
    searcher.on_trial_complete("t1", {BEST_VAL: 0.6, "training_iteration": 2, "time_total_s": 1.5})
    assert searcher.suggest("t4")[JOB].job == "a/search"  # a's second trial once its first ended
    searcher.on_trial_complete("t4", {BEST_VAL: 0.7, "training_iteration": 2})
    status = searcher.wait("a/search", 0)
    assert status.done and status.ended == 2 and status.best == 0.6  # best of the results seen, not of b's
    study = optuna.load_study(study_name="a", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.value for t in study.trials] == [0.6, 0.7] and study.trials[0].user_attrs["wall_time_s"] == 1.5
    assert not searcher.wait("b/search", 0).done

    searcher.close()
    assert searcher.suggest("t5") is None  # b and the refits still run
    searcher.on_trial_complete("r0", {"refit_run_id": "x0", "refit_node_id": "n", "refit_busy_s": 1.0})
    searcher.on_trial_complete("r1", {"refit_error": "ValueError: boom"})
    refits = searcher.wait("c/refits", 0)
    assert refits.done and refits.refits == {0: RefitResult(0, "x0", "n", {}, 1.0)}
    assert refits.refit_errors == {1: "ValueError: boom"}
    searcher.on_trial_complete("t2", error=True)
    assert searcher.wait("b/search", 0).failed == 1 and searcher.suggest("t6") == JobSearcher.FINISHED


def test_a_job_whose_storage_fails_fails_alone(tmp_path: Path) -> None:
    searcher, scheduler = JobSearcher(), JobScheduler()
    add_job(_search(tmp_path, "bad", n_new=1, concurrency=1), searcher, scheduler)
    add_job(_search(tmp_path, "good", n_new=1, concurrency=1), searcher, scheduler)
    optuna.delete_study(study_name="bad", storage=f"sqlite:///{tmp_path / 'optuna.db'}")  # its next ask fails
    assert searcher.suggest("t1")[JOB].job == "good/search"
    bad = searcher.wait("bad/search", 0)
    assert bad.done and "KeyError" in bad.error and not searcher.wait("good/search", 0).error
