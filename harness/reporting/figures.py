"""The report's figures: task × model heatmap, score vs cost, ROC / PR overlays, EPI transfer matrices and
per-group AUROC distributions of multi-label tasks. Artifacts are read from each run (best seed per model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from harness.reporting.render import Section, png
from harness.tracking import store

PREDICTIONS = "predictions/test.tsv"
PER_LABEL = "per_label/test.csv"  # harness.reporting.per_label: label, group, auroc, auprc (multi-label runs)


def metric_heatmap(tables: dict[str, pd.DataFrame]) -> Figure:
    """Task × model heatmap of the (mean) primary test metric, values written in the cells."""
    frame = pd.DataFrame(
        {
            f"{t} ({tab['metric'].iloc[0]})": tab.set_index("model")["test_primary"]
            for t, tab in tables.items()
            if len(tab)
        }
    ).T
    frame = frame[sorted(frame.columns)]
    values = frame.to_numpy(dtype=float)
    fig = Figure(figsize=(2.0 + 1.1 * values.shape[1], 1.2 + 0.5 * values.shape[0]))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", vmin=np.nanmin(values), vmax=np.nanmax(values), aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(values.shape[1]), frame.columns, rotation=30, ha="right")
    ax.set_yticks(range(values.shape[0]), frame.index)
    ax.set_title("primary test metric (mean over seeds)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def cost_scatter(task: str, table: pd.DataFrame) -> Figure:
    """The primary metric against wall time and against parameters (log x), one labelled point per model."""
    fig = Figure(figsize=(10, 4))
    for ax, column, label in zip(
        fig.subplots(1, 2), ("wall_time_s", "n_params"), ("wall time (s)", "parameters"), strict=True
    ):
        ok = table[np.isfinite(table[column].astype(float)) & (table[column].astype(float) > 0)]
        ax.errorbar(ok[column], ok["test_primary"], yerr=ok["test_primary_sd"].fillna(0), fmt="o", capsize=3)
        for _, row in ok.iterrows():
            ax.annotate(
                row["model"], (row[column], row["test_primary"]), fontsize=8, xytext=(4, 4), textcoords="offset points"
            )
        ax.set(xscale="log", xlabel=label, ylabel=f"test {table['metric'].iloc[0]}", title=f"{task}: score vs {label}")
    fig.tight_layout()
    return fig


def curves_figure(task: str, predictions: dict[str, pd.DataFrame]) -> Figure:
    """ROC and PR curves of the best run per model, overlaid (binary predictions: columns label, score)."""
    fig = Figure(figsize=(10, 4.5))
    roc_ax, pr_ax = fig.subplots(1, 2)
    for model, frame in predictions.items():
        fpr, tpr, _ = roc_curve(frame["label"], frame["score"])
        precision, recall, _ = precision_recall_curve(frame["label"], frame["score"])
        roc_ax.plot(fpr, tpr, lw=1.3, label=model)
        pr_ax.plot(recall, precision, lw=1.3, label=model)
    roc_ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    pr_ax.axhline(float(next(iter(predictions.values()))["label"].mean()), ls="--", c="grey", lw=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{task}: ROC (test)")
    pr_ax.set(xlabel="recall", ylabel="precision", title=f"{task}: PR (test)")
    roc_ax.legend(fontsize=8, loc="lower right")
    pr_ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def group_auroc_figure(task: str, per_label: dict[str, pd.DataFrame]) -> Figure:
    """Per-group AUROC distributions (box per group and model) of a multi-label task."""
    frame = pd.concat([f.assign(model=m) for m, f in per_label.items()])
    groups, models = sorted(frame["group"].astype(str).unique()), list(per_label)
    fig = Figure(figsize=(2 + 0.9 * len(groups) * len(models), 4))
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        part = frame[frame["model"] == model]
        data = [part.loc[part["group"].astype(str) == g, "auroc"].dropna().to_numpy() for g in groups]
        ax.boxplot(
            data,
            positions=np.arange(len(groups)) + (k - (len(models) - 1) / 2) * width,
            widths=width * 0.9,
            patch_artist=True,
            boxprops={"facecolor": f"C{k}"},
            label=model,
        )
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set(ylabel="test AUROC per label", title=f"{task}: per-group AUROC")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def best_runs(runs: pd.DataFrame, table: pd.DataFrame) -> dict[str, str]:
    """Per model of a task table, the id of its run with the highest primary test metric."""
    by_id = runs.set_index("run_id")
    out = {}
    for _, row in table[table["n_seeds"] > 0].iterrows():
        used = by_id.loc[row["run_ids"].split(",")]
        out[row["model"]] = str(used["test_primary"].astype(float).idxmax())
    return out


def _artifact_frames(runs: dict[str, str], path: str, tmp: Path, sep: str) -> dict[str, pd.DataFrame]:
    frames = {}
    for model, run_id in runs.items():
        local = store.download_artifact(run_id, path, tmp / run_id)
        if local is not None:
            frames[model] = pd.read_csv(local, sep=sep)
    return frames


def transfer_section(experiment: str, tmp: Path) -> Section | None:
    """The train-cell × test-cell matrices of the experiment's transfer runs (`transfer/<metric>.csv`)."""
    from harness.benchmark.cell_line_transfer import heatmap

    found = store.search_runs(experiment, "tags.`regbench.kind` = 'transfer' AND attributes.status = 'FINISHED'")
    figures = []
    for _, run in found.iterrows():
        metric = run.get("tags.primary_metric") or "auprc"
        local = store.download_artifact(run["run_id"], f"transfer/{metric}.csv", tmp / run["run_id"])
        if local is not None:
            frame = pd.read_csv(local).set_index("train_cell")
            title = f"transfer {run.get('tags.model')} s{run.get('tags.seed')}: test {metric.upper()}"
            figures.append((title, png(heatmap(frame, title))))
    if not figures:
        return None
    note = "Rows: training cell line; columns: test split of each cell line (EPI cross-cell-line transfer)."
    return Section("EPI cross-cell-line transfer", note, figures=figures)


def figure_sections(experiment: str, runs: pd.DataFrame, tables: dict[str, pd.DataFrame], tmp: Path) -> list[Section]:
    """Figure sections of the report; artifacts are downloaded under `tmp`."""
    scored = {t: tab for t, tab in tables.items() if (tab["n_seeds"] > 0).any()}
    sections = [
        Section("Primary metric by task and model", figures=[("task x model heatmap", png(metric_heatmap(scored)))])
    ]
    sections.append(
        Section(
            "Score vs cost",
            "Mean over seeds; error bars: sd across seeds.",
            figures=[(f"{t} score vs cost", png(cost_scatter(t, tab))) for t, tab in scored.items()],
        )
    )
    for task, table in scored.items():
        best = best_runs(runs, table)
        predictions = {
            m: f
            for m, f in _artifact_frames(best, PREDICTIONS, tmp, "\t").items()
            if {"label", "score"} <= set(f.columns) and f["label"].nunique() == 2
        }
        per_label = {
            m: f for m, f in _artifact_frames(best, PER_LABEL, tmp, ",").items() if {"group", "auroc"} <= set(f.columns)
        }
        figures = []
        if predictions:
            figures.append((f"{task} ROC and PR curves", png(curves_figure(task, predictions))))
        if per_label:
            figures.append((f"{task} per-group AUROC", png(group_auroc_figure(task, per_label))))
        if figures:
            sections.append(Section(f"Curves: {task}", "Best seed per model.", figures=figures))
    if any(t.startswith("epi.") for t in tables):
        transfer = transfer_section(experiment, tmp)
        if transfer is not None:
            sections.append(transfer)
    return sections
