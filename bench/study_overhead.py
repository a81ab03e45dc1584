"""Overhead of `regbench study`: Ray start-up, and search wall time vs the trials' own time.

A cheap cell (kmer_logreg on a small enhancers.synthetic) makes the orchestration cost visible: per-trial
overhead = (search wall time - sum of trial times / concurrency) / trials. Writes into a temp dir (MLflow store,
Optuna storage, Ray files), prints a table.

    .venv/bin/python bench/study_overhead.py --trials 8 --concurrency 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
import ray

from harness.tracking import store
from harness.tuning.optuna_tables import trials_table
from harness.tuning.ray_connection import init_local_ray
from harness.tuning.search import StudyRequest, run_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--n", type=int, default=400, help="data.n of enhancers.synthetic")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rb", dir="/tmp") as tmp:
        os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", RAY_TMPDIR=tmp,
                          REGBENCH_CACHE=f"{tmp}/cache")  # fmt: skip
        start = time.perf_counter()
        init_local_ray(num_cpus=os.cpu_count())
        ray_start = time.perf_counter() - start
        storage = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        spec = StudyRequest("enhancers.synthetic", "kmer_logreg", {"data": {"n": args.n}, "model": {"max_iter": 500}},
                         trials=args.trials, concurrency=args.concurrency, max_epochs=1, storage=storage)  # fmt: skip
        result = run_study(spec)
        ray.shutdown()
        table = trials_table(optuna.load_study(study_name=spec.name, storage=storage))
        metrics = store.client().get_run(result.parent_run_id).data.metrics
    search = metrics["search_wall_time_s"]
    trial_sum = float(table["wall_time_s"].sum())
    overhead = (search - trial_sum / args.concurrency) / args.trials
    rows = [
        ("trials x concurrency", f"{args.trials} x {args.concurrency}"),
        ("ray start-up (s)", f"{ray_start:.2f}"),
        ("search wall time (s)", f"{search:.2f}"),
        ("sum of trial times (s)", f"{trial_sum:.2f}"),
        ("search / (trial sum / concurrency)", f"{search / (trial_sum / args.concurrency):.2f}"),
        ("overhead per trial (s)", f"{overhead:.2f}"),
        ("refit + logging (s)", f"{result.wall_time_s - search:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


if __name__ == "__main__":
    main()
