"""Cross-cell transfer: train a model on one cell line's EPI task, score the test split of other cells' tasks.

A cell `c` names the task `epi.<c>`; `CELL@KEY=VALUE@...` adds data options for that cell only (e.g.
`synthetic@seed=1`, a synthetic stand-in cell), on top of the `data.*` settings shared by all cells. The result is one
matrix per metric: rows = training cells, columns = test cells, values = the metric on the test cell's test split
(AUPRC is primary, AUROC alongside), plus the fraction of each test split whose (enhancer, promoter) sequence pair
also occurs in the training cell's train split (TargetFinder cells share many elements, so an off-diagonal score is
not a clean out-of-sample number when that fraction is high).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.config import ConfigError, TrainConfig, merge, parse_value, train_config
from harness.data.datasets import SeqDataset
from harness.plugins import get_model, make_task
from harness.spec import ModelPlugin, Task
from harness.tracking import store
from harness.training.fit import FitResult, fit
from harness.training.run import model_inputs

TASK_PREFIX = "epi."
METRICS = ("auprc", "auroc")
SHARED = "shared_pairs"


@dataclass(frozen=True)
class CellLine:
    """A cell line as given on the command line: its label, task name and its own data options."""

    label: str
    task: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TransferResult:
    """`matrices[name]`: a DataFrame, index = training cells, columns = test cells (`name` in METRICS or SHARED)."""

    matrices: dict[str, pd.DataFrame]
    fits: dict[str, FitResult]


def parse_cells(text: str) -> list[CellLine]:
    """`"gm12878,synthetic@seed=1"` → cells `epi.gm12878` and `epi.synthetic` with data option seed=1."""
    cells = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, *opts = item.split("@")
        options = {}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep or not key:
                raise ConfigError(f"cell {item!r}: expected CELL@KEY=VALUE (e.g. synthetic@seed=1), got {opt!r}")
            options[key] = parse_value(value)
        cells.append(CellLine(item, TASK_PREFIX + name, options))
    if not cells:
        raise ConfigError(f"no cells in {text!r}: give a comma-separated list such as gm12878,k562")
    labels = [c.label for c in cells]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"cells given twice in {text!r}")
    return cells


def pair_keys(dataset: SeqDataset) -> list[bytes]:
    """Per row, a strand-independent content key of its sequences (all branches together)."""
    digests = [branch.canonical_digests() for branch in dataset.seqs]
    return [b"".join(parts) for parts in zip(*digests, strict=True)]


def transfer_matrix(
    plugin: ModelPlugin, hp: Mapping[str, Any], cfg: TrainConfig, train: Mapping[str, Task], test: Mapping[str, Task]
) -> TransferResult:
    """Fit on each training task (its own train/val splits), score every test task's test split.

    Splits pass through the plugin's `featurize` hook (e.g. frozen embeddings) as in `regbench train`.
    """
    rows: dict[str, dict[str, dict[str, float]]] = {name: {} for name in (*METRICS, SHARED)}
    fits = {}
    for train_label, train_task in train.items():
        for test_label, test_task in test.items():
            if test_task.io != train_task.io:
                raise ValueError(f"cell {test_label!r} has inputs {test_task.io}, unlike training cell "
                                 f"{train_label!r} ({train_task.io}); use the same data.*_window settings")  # fmt: skip
        fits[train_label] = result = fit(train_task, plugin, hp, cfg, splits=model_inputs(train_task, plugin, hp))
        seen = set(pair_keys(train_task.splits()["train"]))
        for name in rows:
            rows[name][train_label] = {}
        for test_label, test_task in test.items():
            ds = model_inputs(test_task, plugin, hp)["test"]
            scores = test_task.metrics(ds.labels, result.predictor.score(ds))
            for metric in METRICS:
                rows[metric][train_label][test_label] = scores[metric]
            keys = pair_keys(test_task.splits()["test"])
            rows[SHARED][train_label][test_label] = float(np.mean([k in seen for k in keys])) if keys else 0.0
    matrices = {name: pd.DataFrame.from_dict(r, orient="index")[list(test)] for name, r in rows.items()}
    for frame in matrices.values():
        frame.index.name, frame.columns.name = "train_cell", "test_cell"
    return TransferResult(matrices, fits)


def heatmap(frame: pd.DataFrame, title: str) -> Figure:
    """A train × test heatmap with the values written in the cells (colour scale 0..1)."""
    n_rows, n_cols = frame.shape
    fig = Figure(figsize=(1.4 + 1.1 * n_cols, 1.2 + 0.6 * n_rows))
    ax = fig.add_subplot()
    image = ax.imshow(frame.to_numpy(dtype=float), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(frame.to_numpy(dtype=float)):
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    ax.set_xticks(range(n_cols), frame.columns, rotation=30, ha="right")
    ax.set_yticks(range(n_rows), frame.index)
    ax.set(xlabel="test cell (test split)", ylabel="training cell", title=title)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def safe_key(*parts: str) -> str:
    """An MLflow-safe metric name from cell labels (characters outside `[A-Za-z0-9_./ -]` become `_`)."""
    return "/".join(re.sub(r"[^A-Za-z0-9_. -]", "_", p) for p in parts)


def log_transfer(log: store.RunLogger, result: TransferResult, model: str) -> None:
    """Each matrix as `transfer/<name>.csv`, the metric matrices as PNG heatmaps, and every cell as a metric."""
    for name, frame in result.matrices.items():
        log.table(frame.reset_index(), f"transfer/{name}.csv")
        if name in METRICS:
            log.figure(heatmap(frame, f"{model}: test {name.upper()}"), f"transfer/{name}.png")
        for train_label, row in frame.iterrows():
            log.metrics({safe_key("transfer", name, str(train_label), str(c)): v for c, v in row.items()})
    for label, fitted in result.fits.items():
        values = {"best_val": fitted.best_val, "epochs_run": fitted.epochs_run, "train_time_s": fitted.train_seconds}
        log.metrics({safe_key("fit", label, k): v for k, v in values.items()})
    log.metrics({"n_params": next(iter(result.fits.values())).n_params})


def run_transfer(
    model: str,
    train_cells: Sequence[CellLine],
    test_cells: Sequence[CellLine],
    overrides: Mapping[str, Mapping[str, Any]],
    seed: int = 0,
    max_epochs: int | None = None,
    experiment: str = "regbench",
) -> tuple[TransferResult, str]:
    """Build the cells' tasks, run `transfer_matrix` inside an MLflow run tagged `regbench.kind=transfer`."""
    plugin = get_model(model)
    hp = merge("model", plugin.defaults, overrides.get("model", {}))
    cfg = train_config(overrides.get("train", {}), seed=seed, max_epochs=max_epochs)
    data = dict(overrides.get("data", {}))
    cells = {c.label: c for c in (*train_cells, *test_cells)}
    tasks = {label: make_task(c.task, {**data, **c.options}) for label, c in cells.items()}
    train = {c.label: tasks[c.label] for c in train_cells}
    test = {c.label: tasks[c.label] for c in test_cells}
    tags = {"regbench.kind": "transfer", "model": model, "seed": seed, "primary_metric": METRICS[0],
            "train_cells": ",".join(train), "test_cells": ",".join(test)}  # fmt: skip
    with store.run(experiment, f"transfer/{model}/{'+'.join(train)}/s{seed}", tags) as log:
        log.params({**store.flatten_params("model", hp), **store.flatten_params("train", dataclasses.asdict(cfg)),
                    **store.flatten_params("data", data)})  # fmt: skip
        for label, c in cells.items():
            log.params({safe_key(f"cell.{label}.task"): c.task, safe_key(f"cell.{label}.digest"): tasks[label].digest(),
                        **{safe_key(f"cell.{label}.data.{k}"): v for k, v in c.options.items()}})  # fmt: skip
        result = transfer_matrix(plugin, hp, cfg, train, test)
        log_transfer(log, result, model)
        return result, log.run_id
