"""One tracked training run, read top to bottom: resolve → load data → open the run → fit → evaluate and log.

1. `RunRequest.resolve()` builds the task and the model plugin and validates every setting (no data yet).
2. `load_data()` loads the task's splits (a named step, timed, counted in the run's wall time), computes their
   digest and applies the plugin's `featurize` hook.
3. The caller opens the MLflow run: `train_run` a new top-level run (`regbench train`); a study its cell's run.
4. `fit_and_log()` logs the settings and inputs, fits, evaluates on val/test with CIs and logs the outcome.
`regbench train` and a study's refit both go through steps 1, 2 and 4. MLflow and the plotting libraries are
imported only after the data has loaded (steps 3 and 4), so a run starts on its data within about a second of
torch's import.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.config import ConfigError, TrainConfig, merge, train_config
from harness.data.encode import check_lengths
from harness.data.splits import CvTask
from harness.evaluation.scoring import Evaluation, evaluate
from harness.limits import check_name
from harness.plugins import get_model, make_task, source_tags
from harness.spec import ModelPlugin, Splits, Task
from harness.training.fit import FitResult, fit, resolve_device
from harness.training.modeling import check_compatible
from harness.training.precision import amp_tag
from harness.training.resources import ResourceMonitor

if TYPE_CHECKING:
    from harness.tracking.store import RunLogger

Resources = Callable[[dict[str, float]], dict[str, float]]  # maps the fit's measurements to the metrics logged


@dataclass(frozen=True)
class ResolvedRun:
    """A validated run: the task (data not loaded yet), the plugin and the full settings."""

    task: Task
    plugin: ModelPlugin
    hp: dict[str, Any]
    cfg: TrainConfig
    data_options: dict[str, Any]


@dataclass(frozen=True)
class RunRequest:
    """Everything that defines a training run."""

    task: str
    model: str
    overrides: Mapping[str, Mapping[str, Any]]  # {"model": {...}, "train": {...}, "data": {...}}
    seed: int = 0
    max_epochs: int | None = None
    experiment: str = "regbench"

    def resolve(self, task: Task | None = None) -> ResolvedRun:
        """Build the task (or reuse `task`, already built from the same data options) and model plugin, and
        validate every setting before any data is loaded."""
        check_name(self.experiment, "experiment")
        if self.max_epochs is not None and "max_epochs" in self.overrides.get("train", {}):
            given = self.overrides["train"]["max_epochs"]
            raise ConfigError(f"--max-epochs {self.max_epochs} and train.max_epochs={given!r} are both given; keep one")
        plugin = get_model(self.model)
        hp = merge("model", plugin.defaults, self.overrides.get("model", {}))
        train = {**plugin.train_defaults, **self.overrides.get("train", {})}
        cfg = train_config(train, seed=self.seed, max_epochs=self.max_epochs)
        data_options = dict(self.overrides.get("data", {}))
        task = task if task is not None else make_task(self.task, data_options)
        check_compatible(plugin, task.io, hp, task.name)
        return ResolvedRun(task, plugin, hp, cfg, data_options)


@dataclass(frozen=True)
class LoadedData:
    """The splits a run trains and is scored on, their digest and how long loading took."""

    splits: Splits
    digest: str  # of the task's own splits (before featurize)
    seconds: float


def load_task_data(task: Task) -> tuple[str, float]:
    """Load the task's splits (cached by the task) and digest them: `(digest, seconds)`."""
    start = time.perf_counter()
    task.splits()
    digest = task.digest()
    return digest, time.perf_counter() - start


def model_inputs(task: Task, plugin: ModelPlugin, hp: Mapping[str, Any]) -> Splits:
    """The task's splits, passed through the plugin's `featurize` hook (e.g. frozen embeddings) if any."""
    splits = Splits(task.splits())
    if plugin.featurize is None:
        return splits
    featurized = plugin.featurize(task, splits, **hp)
    return Splits(featurized, featurized.stats)


def _check_lengths(run: ResolvedRun) -> None:
    """InputTooLongError naming the first record of any split longer than the model takes (`max_length`)."""
    if run.plugin.max_length is None:
        return
    limit = run.plugin.max_length(run.hp, run.task.io)
    for name, ds in run.task.splits().items():
        for branch in getattr(ds, "seqs", ()):
            check_lengths(ds.ids, branch.lengths, limit, run.plugin.name, f"{run.task.name} {name} split")


def load_data(run: ResolvedRun) -> LoadedData:
    """Step 2: the task's splits and their digest, then the model's inputs made from them (`model_inputs`)."""
    start = time.perf_counter()
    digest, _ = load_task_data(run.task)
    _check_lengths(run)
    splits = model_inputs(run.task, run.plugin, run.hp)
    return LoadedData(splits, digest, time.perf_counter() - start)


def run_tags(task: Task, model: str, seed: int, digest: str) -> dict[str, Any]:
    """The tags of a run on `task`'s loaded data with content `digest` (`near_duplicate_test_fraction`: cached per
    digest, `harness.data.near_duplicates`)."""
    from harness.data.near_duplicates import near_duplicate_tag

    tags = {"task": task.name, "model": model, "seed": seed, "split_protocol": task.split_protocol,
            "dataset_digest": digest, "primary_metric": task.primary_metric,
            "near_duplicate_test_fraction": near_duplicate_tag(task, digest),
            **source_tags(task.name, model)}  # fmt: skip
    if task.synthetic:
        tags["synthetic"] = "true"
    return tags


def _log_config(log: RunLogger, run: ResolvedRun) -> None:
    """The run's settings as params `model.*`, `train.*`, `data.*`."""
    from harness.tracking import store

    log.params({**store.flatten_params("model", run.hp), **store.flatten_params("train", dataclasses.asdict(run.cfg)),
                **store.flatten_params("data", run.data_options)})  # fmt: skip


def _log_inputs(log: RunLogger, task: Task, data: LoadedData) -> None:
    """Each split as an MLflow dataset input, plus the featurize hook's own measurements (e.g. embed_seq_per_s)."""
    log.metrics(data.splits.stats)
    for name, ds in data.splits.items():
        log.dataset(f"{task.name}:{name}", ds.digest(), name, {"task": task.name, "split": name, "rows": len(ds),
                                                               "split_protocol": task.split_protocol})  # fmt: skip


def _log_outcome(log: RunLogger, run: ResolvedRun, result: FitResult, splits: Splits,
                 resources: Mapping[str, float]) -> Evaluation:  # fmt: skip
    """Evaluate on val/test and log metrics with CIs, resources, figures, predictions and the model."""
    from harness.reporting import per_label, plots

    task, plugin = run.task, run.plugin
    ev = evaluate(task, result.predictor, splits, seed=run.cfg.seed)
    # val_* of the restored best model are logged at the last epoch's step, so each val_* history ends on the
    # value of the model that is evaluated on test and logged.
    log.metrics({k: v for k, v in ev.metrics.items() if k.startswith("val_")}, step=result.epochs_run)
    log.metrics({k: v for k, v in ev.metrics.items() if not k.startswith("val_")})
    # The task's primary test metric again under one name for every task family, so one UI column compares all runs.
    log.metrics({f"test_primary{end}": ev.metrics.get(f"test_{task.primary_metric}{end}")
                 for end in ("", "_ci_low", "_ci_high")})  # fmt: skip
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
                (f"plots/roc_{split}.png", plots.roc_figure(labels, scores, f"{task.name} {split} ROC", plugin.name)),
                (f"plots/pr_{split}.png", plots.pr_figure(labels, scores, f"{task.name} {split} PR", plugin.name)),
                (f"plots/confusion_{split}.png", plots.confusion_figure(labels, scores, 0.5, f"{split}")),
            ):
                log.figure(fig, name)
                plots.close(fig)
    if plugin.inspect is not None:
        for name, fig in plugin.inspect(result.predictor, splits).items():
            log.figure(fig, name)
            plots.close(fig)
    meta = {"task": task.name, "model": plugin.name, "hp": dict(run.hp), "data": dict(run.data_options),
            "train": dataclasses.asdict(run.cfg), "io": dataclasses.asdict(task.io),
            "threshold_val_f1": ev.threshold}  # fmt: skip
    log.model(result.predictor, meta, torch_model=plugin.is_torch)
    return ev


@dataclass(frozen=True)
class RunOutcome:
    result: FitResult
    evaluation: Evaluation


def _as_logged(resources: dict[str, float]) -> dict[str, float]:
    return resources


def fit_and_log(
    log: RunLogger,
    run: ResolvedRun,
    data: LoadedData,
    *,
    epoch_metrics: bool = True,
    resources: Resources = _as_logged,
) -> RunOutcome:
    """Step 4, into the open run `log`: settings, inputs, the fit (per-epoch metrics unless `epoch_metrics` is
    off), then evaluation and artifacts. `wall_time_s` counts the data load and the fit; `resources` maps those
    measurements to the metrics logged (a study's refit names them `refit_*` and adds its trials' peaks)."""
    _log_config(log, run)
    if run.plugin.is_torch:
        log.tags(amp_tag(resolve_device(run.cfg.device), run.cfg.amp))
    _log_inputs(log, run.task, data)
    report = (lambda row: log.metrics(row, step=int(row["epoch"]))) if epoch_metrics else None
    with ResourceMonitor(device=resolve_device(run.cfg.device)) as monitor:
        result = fit(run.task, run.plugin, run.hp, run.cfg, report=report, splits=data.splits)
    log.metrics(result.model_metrics)
    measured = monitor.summary()
    measured["data_load_time_s"] = data.seconds
    measured["wall_time_s"] += data.seconds
    evaluation = _log_outcome(log, run, result, data.splits, resources(measured))
    return RunOutcome(result, evaluation)


def train_run(request: RunRequest) -> str:
    """`regbench train`: resolve, load the data, then fit, evaluate and log one new run (under `data.split=cv`, one
    with a nested run per fold: `harness.training.cross_validation`); returns its run id."""
    run = request.resolve()
    if isinstance(run.task, CvTask):  # data.split=cv: one nested run per fold
        from harness.training.cross_validation import train_cv_run

        return train_cv_run(request, run)
    data = load_data(run)
    from harness.tracking import store  # after the data load: mlflow costs about a second to import

    tags = {**run_tags(run.task, run.plugin.name, request.seed, data.digest), "regbench.kind": "train"}
    from harness.tracking.run_names import train_name

    with store.run(request.experiment, train_name(run.task.name, run.plugin.name, request.seed), tags) as log:
        fit_and_log(log, run, data)
        return log.run_id
