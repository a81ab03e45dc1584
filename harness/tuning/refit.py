"""A cell's refits: its best configuration trained once per evaluation seed, each a trial of the benchmark's
`TrialService` holding the trials' resources (`cpus_per_trial`, `gpus_per_trial`), placed by Ray on whichever node
has room, in the trial processes the searches already warmed (Tune starts a pending refit on whichever comes first: a
warm process freed by another trial, or a new one — so refits shorter than a process start may run one after the
other in one process rather than in parallel).

Each refit is an MLflow run nested under the cell run (`regbench.kind=refit`, named `<cell> · sSEED`, tags `seed`,
`ray_node_id`, `ray_trial_id`) logged by the same `fit_and_log` as a `regbench train` run: params, test metrics
with CIs, predictions, curves, resources and the model. Under `data.split=cv` a refit is what a cross-validated
`regbench train` run is (`harness.training.cross_validation.fit_and_log_folds`): one fold run per fold nested under
it, fold mean ± sd and pooled out-of-fold metrics on it; the search then tuned on fold 1's train/val.
The cell run then carries `seed_summary` of its refits. With `workers_per_trial` > 1 (a torch model) the refit's
fit runs data-parallel on that many Ray Train workers, rank 0 logging into the refit run (`harness.training.workers`).

Resume: a FINISHED refit of the same study, configuration and seed (tags `study_name`, `regbench.refit_config`,
`seed`) is reused — moved under the new cell run — instead of trained again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.data.splits import CvTask
from harness.tracking import store
from harness.tracking.run_names import refit_name
from harness.training.cross_validation import fit_and_log_folds
from harness.training.run import fit_and_log, load_data, load_task_data, run_tags
from harness.training.workers import log_fit
from harness.tuning.trial import Searched, TrialContext, enter_worker, on_workers, run_request

REFIT_CONFIG_TAG = "regbench.refit_config"


class RefitFailedError(RuntimeError):
    """A refit of the cell's best configuration failed; the message names the seed and the cause."""


@dataclass(frozen=True)
class RefitResult:
    """One seed's refit: its run, where it ran, its logged metrics and how long it held its slot."""

    seed: int
    run_id: str
    node_id: str
    metrics: dict[str, float]  # everything the refit run logged last (test_*, val_*, resources, n_params)
    busy_s: float  # wall seconds from the task's start to its run's end
    reused: bool = False


def refit_config(ctx: TrialContext, searched: Searched) -> str:
    """Digest of what defines a refit besides its seed: task, model, fixed and searched settings, epoch budget."""
    payload = {"task": ctx.task, "model": ctx.model, "fixed": ctx.fixed, "searched": searched, "epochs": ctx.max_epochs}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_refit(ctx: TrialContext, searched: Searched, seed: int) -> RefitResult:
    """Train and log one seed's refit into a new run under the cell run (`ctx.parent_run_id`), in a trial actor of
    the `TrialService`; the result's `metrics` are left empty (the cell reads them from the run)."""
    import ray
    from ray import tune

    start = time.perf_counter()
    enter_worker(ctx.env, ctx.cwd)
    request = run_request(dataclasses.replace(ctx, seed=seed), searched, progress=False)
    run = request.resolve()
    folds = isinstance(run.task, CvTask)  # data.split=cv: the refit is K fold runs and their pooled summary
    data = None if folds or ctx.workers > 1 else load_data(run)  # the workers load their own
    digest = load_task_data(run.task)[0] if data is None else data.digest
    node_id = ray.get_runtime_context().get_node_id()
    tags = {**run_tags(run.task, run.plugin.name, seed, digest), "regbench.kind": "refit",
            "study_name": ctx.study_name, "ray_node_id": node_id, "ray_trial_id": tune.get_context().get_trial_id(),
            REFIT_CONFIG_TAG: refit_config(ctx, searched), **ctx.tags,
            **({"workers": ctx.workers} if ctx.workers > 1 else {})}  # fmt: skip
    with store.run(ctx.experiment, refit_name(ctx.cell_name, seed), tags, parent_run_id=ctx.parent_run_id) as log:
        if ctx.workers > 1:  # a failure ends the run FAILED with error.txt there
            on_workers(ctx, request, log, functools.partial(log_fit, epoch_metrics=False))
        else:
            try:
                if data is None:
                    fit_and_log_folds(log, run, epoch_metrics=False)
                else:
                    fit_and_log(log, run, data, epoch_metrics=False)
            except Exception:
                log.text(traceback.format_exc(), "error.txt")
                raise
        run_id = log.run_id
    return RefitResult(seed, run_id, node_id, {}, time.perf_counter() - start)


def finished_refits(ctx: TrialContext, searched: Searched) -> dict[int, RefitResult]:
    """Seed → the newest FINISHED refit of this study and configuration, from any earlier invocation."""
    query = (
        f"tags.`regbench.kind` = 'refit' AND tags.study_name = '{ctx.study_name}' AND "
        f"tags.`{REFIT_CONFIG_TAG}` = '{refit_config(ctx, searched)}' AND attributes.status = 'FINISHED'"
    )
    runs = store.client().search_runs([store.ensure_experiment(ctx.experiment)], query,
                                      order_by=["attributes.start_time DESC"])  # fmt: skip
    out: dict[int, RefitResult] = {}
    for r in runs:
        seed = int(r.data.tags["seed"])
        out.setdefault(seed, RefitResult(seed, r.info.run_id, r.data.tags.get("ray_node_id", ""),
                                         dict(r.data.metrics), 0.0, reused=True))  # fmt: skip
    return out


def refit_seeds(
    ctx: TrialContext, searched: Searched, seeds: Sequence[int], service: Any,
    meanwhile: Callable[[], None] = lambda: None,
) -> list[RefitResult]:  # fmt: skip
    """Refit `searched` once per seed (in seed order): finished refits are reused and moved under the cell run
    (`ctx.parent_run_id`); the rest run at once as trials of the benchmark's `TrialService` (each holding
    `cpus_per_trial`/`gpus_per_trial`), while this process runs `meanwhile` (the cell's own logging).
    RefitFailedError names the first seed that failed, after every other refit has ended."""
    from harness.tuning.jobs import RefitJob
    from harness.tuning.trial_service import run_job

    done = {s: r for s, r in finished_refits(ctx, searched).items() if s in seeds}
    for result in done.values():
        store.set_tags(result.run_id, {store.PARENT_TAG: ctx.parent_run_id, **ctx.tags})
    todo = tuple(seed for seed in seeds if seed not in done)
    job = RefitJob(f"{ctx.study_name}/{ctx.parent_run_id}/refits", ctx, searched, todo)
    status = run_job(service, job, meanwhile=meanwhile)
    client = store.client()
    for seed, ran in status.refits.items():
        done[seed] = dataclasses.replace(ran, metrics=dict(client.get_run(ran.run_id).data.metrics))
    errors = status.refit_errors
    if errors:
        seed = min(errors)
        raise RefitFailedError(f"refit with seed {seed} failed: {errors[seed]}")
    return [done[seed] for seed in seeds]


def seed_summary(results: Sequence[RefitResult]) -> dict[str, float]:
    """The cell's metrics over its refits: `test_<m>_mean` and (two or more seeds) `test_<m>_sd` (sample sd) of
    every test metric but the CI bounds and a cross-validated refit's own fold summaries (`*_mean`, `*_sd`);
    `test_primary` is the mean too (one column sorts every run in the UI), with the refit's CI when there is one
    seed; `refit_wall_time_s` the longest refit; `peak_rss_mb`/`peak_gpu_mem_mb` the largest."""
    names = sorted({k for r in results for k in r.metrics
                    if k.startswith("test_") and "_ci_" not in k and not k.endswith(("_mean", "_sd"))})  # fmt: skip
    out: dict[str, float] = {}
    for name in names:
        values = [r.metrics[name] for r in results if math.isfinite(r.metrics.get(name, math.nan))]
        if values:
            out[f"{name}_mean"] = statistics.fmean(values)
        if len(values) >= 2:
            out[f"{name}_sd"] = statistics.stdev(values)
    if "test_primary_mean" in out:
        out["test_primary"] = out["test_primary_mean"]
        if len(results) == 1:
            for end in ("_ci_low", "_ci_high"):
                if f"test_primary{end}" in results[0].metrics:
                    out[f"test_primary{end}"] = results[0].metrics[f"test_primary{end}"]
    for name, source in (("refit_wall_time_s", "wall_time_s"), ("peak_rss_mb", "peak_rss_mb"),
                         ("peak_gpu_mem_mb", "cuda_peak_allocated_mb"), ("n_params", "n_params")):  # fmt: skip
        values = [r.metrics[source] for r in results if source in r.metrics]
        if values:
            out[name] = max(values)
    return out


def per_seed_table(results: Sequence[RefitResult]) -> list[dict[str, Any]]:
    """One row per seed (run id, node, reused, test metrics) for the cell's `seeds.csv`."""
    return [{"seed": r.seed, "run_id": r.run_id, "ray_node_id": r.node_id, "reused": r.reused,
             **{k: v for k, v in sorted(r.metrics.items()) if k.startswith("test_")}} for r in results]  # fmt: skip
