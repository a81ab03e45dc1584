"""Per-label artifacts of a multi-label run: a CSV of per-label AUROC / AUPRC and a histogram of per-label AUROC."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.evaluation.metrics import multilabel_metrics
from harness.reporting import plots
from harness.spec import Task
from harness.tracking.store import RunLogger

GROUP_NONE = ""


def per_label_table(
    y_true: np.ndarray, y_score: np.ndarray, names: tuple[str, ...], groups: dict[str, np.ndarray] | None
) -> pd.DataFrame:
    """One row per label: `index`, `label` (name), `group`, `auroc`, `auprc`, `n_pos` (NaN metrics: no positives
    or no negatives)."""
    _, table = multilabel_metrics(y_true, y_score, groups)
    n = len(table)
    if names and len(names) != n:
        raise ValueError(f"{len(names)} label names for {n} labels")
    group = np.full(n, GROUP_NONE, dtype=object)
    for name, idx in (groups or {}).items():
        group[np.asarray(idx)] = name.lower()
    return table.rename(columns={"label": "index"}).assign(
        label=list(names) if names else [str(i) for i in range(n)], group=group
    )[["index", "label", "group", "auroc", "auprc", "n_pos"]]


def auroc_histogram(table: pd.DataFrame, title: str) -> Figure:
    """Histogram of per-label AUROC, one colour per label group; skipped labels are counted in the legend."""
    fig, ax = plots.plt.subplots(figsize=(5.5, 3.8))
    bins = np.linspace(0.0, 1.0, 41)
    for group, rows in table.groupby("group", sort=False):
        scored = rows["auroc"].dropna()
        label = f"{group or 'all'} (n={len(scored)}, median {scored.median():.3f})" if len(scored) else group
        ax.hist(scored, bins=bins, alpha=0.6, label=label)
    skipped = int(table["auroc"].isna().sum())
    ax.set(xlabel="per-label AUROC", ylabel="labels", title=f"{title} ({skipped} labels skipped: one class only)")
    ax.axvline(0.5, ls="--", c="grey", lw=0.8)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def log_split(log: RunLogger, task: Task, split: str, y_true: np.ndarray, y_score: np.ndarray) -> None:
    """Log `per_label/{split}.csv` and `plots/per_label_auroc_{split}.png` into the active run."""
    table = per_label_table(y_true, y_score, task.io.label_names, dict(task.label_groups) or None)
    log.table(table, f"per_label/{split}.csv")
    fig = auroc_histogram(table, f"{task.name} {split}")
    log.figure(fig, f"plots/per_label_auroc_{split}.png")
    plots.close(fig)
