"""`regbench train`: one tracked training run (under `data.split=cv`, one with a nested run per fold); prints a short
summary of what was logged, then `run_id: <id>` as its last line."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from typing import Any

import yaml

from harness.config import parse_overrides
from harness.limits import ascii_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model on one task and log it to MLflow",
        description="Train MODEL on TASK, evaluate on val/test (with bootstrap CIs) and log everything to MLflow "
        "(default store sqlite:///mlflow.db, or $MLFLOW_TRACKING_URI).",
        epilog="examples:\n  regbench train --task enhancers.ienhancer2l --model kmer_attention\n"
        "  regbench train --task enhancers.synthetic --model kmer_attention --set model.k=5 --set train.lr=3e-4\n"
        "  regbench train --task enhancers.ienhancer2l --model kmer_logreg --set data.split=cv --set data.folds=5",
    )
    add_run_arguments(p)
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="train data-parallel on N Ray Train workers of a local Ray, one CPU each (torch models; "
                   "the global batch stays train.batch_size; default 1)")  # fmt: skip
    p.set_defaults(func=run)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="task name (see `regbench tasks`)")
    p.add_argument("--model", required=True, help="model name (see `regbench models`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting: model.*, train.* or data.* (repeatable), e.g. train.lr=1e-3")  # fmt: skip
    p.add_argument(
        "--sets",
        default="",
        metavar="'K=V K=V'",
        help="several overrides in one whitespace-separated string (used by the MLproject entry points)",
    )
    p.add_argument("--seed", type=ascii_int, default=0, help="random seed (default 0)")
    p.add_argument("--max-epochs", type=ascii_int, default=None,
                   help="maximum training epochs (default: train.max_epochs)")  # fmt: skip
    p.add_argument("--experiment", default="regbench", help="MLflow experiment name (default: regbench)")


def overrides_from(args: argparse.Namespace) -> dict[str, dict]:
    """`--set` items plus the whitespace-separated `--sets` string."""
    return parse_overrides([*args.overrides, *args.sets.split()])


def run(args: argparse.Namespace) -> int:
    from harness.training.run import RunRequest, train_run

    spec = RunRequest(args.task, args.model, overrides_from(args), args.seed, args.max_epochs, args.experiment)
    if getattr(args, "workers", 1) != 1:
        from harness.training.workers import train_run_on_workers

        run_id = train_run_on_workers(spec, args.workers)
    else:
        run_id = train_run(spec)
    print(summary(run_id, spec.overrides.get("data", {})))
    print(f"run_id: {run_id}")
    return 0


def summary(run_id: str, data: Mapping[str, Any]) -> str:
    """The logged run in a few lines: test primary metric with its 95% CI (and val), time and epochs, parameters,
    then its logged model's `models:/<id>` URI and the `mlflow models predict` line that scores with it (its
    `regbench export` carries the run's `data` settings, so it exports the data the model was trained on)."""
    from harness.tracking import store

    run = store.client().get_run(run_id)
    metrics = _metric_lines(run.data.metrics, run.data.tags.get("primary_metric", "primary"))
    uri, task = run.data.tags.get(store.MODEL_URI_TAG), run.data.tags.get("task", "TASK")
    if uri is None:  # a cross-validated run: its fold runs hold the models
        return metrics
    sets = "".join(f" --set {shlex.quote(f'data.{key}={setting_text(value)}')}" for key, value in data.items())
    export = f"regbench export --task {task}{sets} --split test --out seqs.csv"
    predict = f"{store.tracking_env()}mlflow models predict -m {uri} -i seqs.csv -t csv --env-manager local"
    return "\n".join([metrics, f"model: {uri}", f"score with it: {export} && {predict}"])


def setting_text(value: Any) -> str:
    """`value` as `--set K=TEXT` text that `harness.config.parse_value` reads back as `value` (YAML flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text.removesuffix("...").strip()


def _metric_lines(m: dict[str, float], metric: str) -> str:
    """Test primary metric ± CI (and val), time and epochs, parameters; for a cross-validated run, also per fold."""

    def num(name: str, spec: str) -> str:
        return format(m[name], spec) if name in m else "n/a"

    ci = f" [{num('test_primary_ci_low', '.3f')}, {num('test_primary_ci_high', '.3f')}] (95% CI)"
    epochs = f", {int(m['epochs_run'])} epoch(s), best {int(m['best_epoch'])}" if "best_epoch" in m else ""
    if "n_folds" in m:  # a cross-validated run: pooled out-of-fold, then mean ± sd over the folds
        return "\n".join([
            f"test {metric} (pooled out-of-fold): {num('test_primary', '.3f')}{ci}",
            f"over {int(m['n_folds'])} folds: test {metric} {num('test_primary_mean', '.3f')} ± "
            f"{num('test_primary_sd', '.3f')} (mean ± sd)   (val {num(f'val_{metric}_mean', '.3f')})",
            f"time: {num('wall_time_s', '.1f')} s ({num('train_time_s', '.1f')} s training in all folds)",
            f"params: {num('n_params', ',.0f')} per fold model",
        ])  # fmt: skip
    return "\n".join([
        f"test {metric}: {num('test_primary', '.3f')}{ci if 'test_primary_ci_low' in m else ''}"
        f"   (val {num(f'val_{metric}', '.3f')})",
        f"time: {num('wall_time_s', '.1f')} s ({num('train_time_s', '.1f')} s training{epochs})",
        f"params: {num('n_params', ',.0f')}",
    ])  # fmt: skip
