"""One tracked training run: `regbench train` and a study's refit both end here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.config import TrainConfig, merge, train_config
from harness.evaluation.scoring import Evaluation, evaluate
from harness.plugins import get_model, make_task
from harness.reporting import per_label, plots
from harness.spec import Dataset, ModelPlugin, Task
from harness.tracking import store
from harness.training.fit import FitResult, fit, prepare_splits, resolve_device
from harness.training.modeling import check_compatible
from harness.training.resources import ResourceMonitor


@dataclass(frozen=True)
class RunRequest:
    """Everything that defines a training run."""

    task: str
    model: str
    overrides: Mapping[str, Mapping[str, Any]]  # {"model": {...}, "train": {...}, "data": {...}}
    seed: int = 0
    max_epochs: int | None = None
    experiment: str = "regbench"

    def resolve(self) -> tuple[Task, ModelPlugin, dict[str, Any], TrainConfig]:
        """Build the task and model plugin and validate every setting before any training starts."""
        plugin = get_model(self.model)
        hp = merge("model", plugin.defaults, self.overrides.get("model", {}))
        train = {**plugin.train_defaults, **self.overrides.get("train", {})}
        cfg = train_config(train, seed=self.seed, max_epochs=self.max_epochs)
        task = make_task(self.task, dict(self.overrides.get("data", {})))
        check_compatible(plugin, task.io, hp, task.name)
        return task, plugin, hp, cfg


def run_tags(task: Task, model: str, seed: int) -> dict[str, Any]:
    tags = {"task": task.name, "model": model, "seed": seed, "split_protocol": task.split_protocol,
            "dataset_digest": task.digest(), "primary_metric": task.primary_metric}  # fmt: skip
    if task.synthetic:
        tags["synthetic"] = "true"
    return tags


def log_config(log: store.RunLogger, hp: Mapping[str, Any], cfg: TrainConfig, data_options: Mapping[str, Any]) -> None:
    """The run's settings as params `model.*`, `train.*`, `data.*`."""
    log.params({**store.flatten_params("model", hp), **store.flatten_params("train", dataclasses.asdict(cfg)),
                **store.flatten_params("data", data_options)})  # fmt: skip


def log_run_inputs(log: store.RunLogger, task: Task, splits: Mapping[str, Dataset]) -> None:
    """Each split as an MLflow dataset input, plus a featurize hook's own measurements (e.g. embed_seq_per_s)."""
    log.metrics(getattr(splits, "stats", {}))
    for name, ds in splits.items():
        digest = ds.digest() if hasattr(ds, "digest") else task.digest()
        log.dataset(f"{task.name}:{name}", digest, name, {"task": task.name, "split": name, "rows": len(ds),
                                                          "split_protocol": task.split_protocol})  # fmt: skip


def log_outcome(
    log: store.RunLogger,
    task: Task,
    plugin: ModelPlugin,
    hp: Mapping[str, Any],
    cfg: TrainConfig,
    data_options: Mapping[str, Any],
    result: FitResult,
    splits: Mapping[str, Dataset],
    resources: Mapping[str, float],
) -> Evaluation:
    """Evaluate on val/test and log metrics with CIs, resources, figures, predictions and the model."""
    ev = evaluate(task, result.predictor, splits, seed=cfg.seed)
    # val_* of the restored best model are logged at the last epoch's step, so each val_* history ends on the
    # value of the model that is evaluated on test and logged.
    log.metrics({k: v for k, v in ev.metrics.items() if k.startswith("val_")}, step=result.epochs_run)
    log.metrics({k: v for k, v in ev.metrics.items() if not k.startswith("val_")})
    log.metrics({
        "n_params": result.n_params, "train_time_s": result.train_seconds, "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch, "train_throughput_seq_per_s": result.throughput, **resources,
    })  # fmt: skip
    for split, scores in ev.scores.items():
        labels = splits[split].labels
        log.table(plots.predictions_table(splits[split].ids, labels, scores), f"predictions/{split}.tsv")
        if task.io.target == "multilabel":
            per_label.log_split(log, task, split, labels, scores)
        if task.io.target == "binary" and 0 < labels.sum() < len(labels):
            for name, fig in (
                (f"plots/roc_{split}.png", plots.roc_figure(labels, scores, f"{task.name} {split} ROC")),
                (f"plots/pr_{split}.png", plots.pr_figure(labels, scores, f"{task.name} {split} PR")),
                (f"plots/confusion_{split}.png", plots.confusion_figure(labels, scores, 0.5, f"{split}")),
            ):
                log.figure(fig, name)
                plots.close(fig)
    if plugin.inspect is not None:
        for name, fig in plugin.inspect(result.predictor, splits).items():
            log.figure(fig, name)
            plots.close(fig)
    meta = {
        "task": task.name,
        "model": plugin.name,
        "hp": dict(hp),
        "data": dict(data_options),
        "train": dataclasses.asdict(cfg),
        "io": dataclasses.asdict(task.io),
        "threshold_val_f1": ev.threshold,
    }
    log.model(result.predictor, meta)
    return ev


def fit_and_log(spec: RunRequest) -> str:
    """Train, evaluate and log one run; returns its MLflow run id."""
    task, plugin, hp, cfg = spec.resolve()
    data_options = dict(spec.overrides.get("data", {}))
    with store.run(spec.experiment, f"{task.name}/{plugin.name}/s{spec.seed}",
                      {**run_tags(task, plugin.name, spec.seed), "regbench.kind": "train"}) as log:  # fmt: skip
        log_config(log, hp, cfg, data_options)
        with ResourceMonitor(device=resolve_device(cfg.device)) as monitor:
            splits = prepare_splits(task, plugin, hp)
            log_run_inputs(log, task, splits)
            result = fit(task, plugin, hp, cfg, report=lambda row: log.metrics(row, step=int(row["epoch"])),
                         splits=splits)  # fmt: skip
        log_outcome(log, task, plugin, hp, cfg, data_options, result, splits, monitor.summary())
        return log.run_id
