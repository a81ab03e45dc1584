"""The report's figures: model × task heatmap, score vs cost, ROC / PR overlays, EPI transfer matrices and
per-group AUROC distributions of multi-label tasks. Artifacts are read from each run (best seed per model).

Figures are drawn at the size the report shows them (`render.png` records it), so 9-point text reads as 9-point
text. Each model keeps one colour and marker in every figure (`model_styles`), and is named in a legend that sits
beside or below the axes, never over the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from harness.reporting.render import Section, png
from harness.tracking import store

PREDICTIONS = "predictions/test.tsv"
PER_LABEL = "per_label/test.csv"  # harness.reporting.per_label: label, group, auroc, auprc (multi-label runs)
WIDTH = 10.5  # inches of a full-width figure (about 1000 CSS px, inside the report's 1100 px column)
MARKERS = "osD^vP*Xhp<>"
FONT = 9


def model_styles(models: Sequence[str]) -> dict[str, dict[str, str]]:
    """A colour and a marker per model (sorted names), the same in every figure of a report."""
    palette = colormaps["tab20"].colors if len(models) > 10 else colormaps["tab10"].colors
    return {m: {"color": palette[i % len(palette)], "marker": MARKERS[i % len(MARKERS)]}
            for i, m in enumerate(sorted(models))}  # fmt: skip


def _short_number(value: float, _: object = None) -> str:
    """Tick labels of a log axis: 50, 200, 3k, 1.2M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _log_axis(ax: Axes) -> None:
    """A log x axis labelled at 1, 2, 5 × 10^k over at most two decades, else at powers of ten only (every
    second or third one over wide ranges), so labels never overlap. Call after plotting."""
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    decades = np.log10(high / low)
    subs = (1.0, 2.0, 5.0) if decades <= 2 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=7))
    ax.xaxis.set_major_formatter(FuncFormatter(_short_number))
    ax.xaxis.set_minor_formatter(NullFormatter())


def metric_heatmap(tables: dict[str, pd.DataFrame]) -> Figure:
    """Model × task heatmap of the (mean) primary test metric, values written in the cells and shaded within each
    task (metrics differ between tasks); one row per model, so many models make it taller, not smaller."""
    frame = pd.DataFrame({f"{t}\n({tab['metric'].iloc[0]})": tab.set_index("model")["test_primary"]
                          for t, tab in tables.items() if len(tab)})  # fmt: skip
    frame = frame.loc[sorted(frame.index)]
    values = frame.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN or one-model columns
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        shade = np.where(high > low, (values - low) / np.where(high > low, high - low, 1), 1.0)
    fig = Figure(figsize=(min(WIDTH, 3.2 + 1.6 * values.shape[1]), 1.2 + 0.32 * values.shape[0]))
    ax = fig.add_subplot()
    ax.imshow(np.ma.masked_invalid(shade), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            dark = shade[i, j] < 0.6
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="white" if dark else "black", fontsize=FONT)
    ax.set_xticks(range(values.shape[1]), frame.columns, fontsize=FONT)
    ax.set_yticks(range(values.shape[0]), frame.index, fontsize=FONT)
    ax.xaxis.tick_top()
    ax.set_title("test primary metric; colour: worst to best within each task", fontsize=FONT + 1, pad=12)
    fig.tight_layout()
    return fig


def cost_scatter(task: str, table: pd.DataFrame, styles: dict[str, dict[str, str]] | None = None) -> Figure:
    """The primary metric (error bars: its 95% CI, or the sd over seeds) against wall time and against
    parameters (log x), one marker per model named in the legend on the right."""
    styles = styles or model_styles(list(table["model"]))
    fig = Figure(figsize=(WIDTH, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    metric = table["metric"].iloc[0]
    for ax, column, label in zip(axes, ("wall_time_s", "n_params"), ("wall time (s)", "parameters"), strict=True):
        for _, row in table.iterrows():
            x, y = float(row[column]), float(row["test_primary"])
            if not (np.isfinite(x) and x > 0 and np.isfinite(y)):
                continue
            ax.errorbar(x, y, yerr=_error_bar(row), fmt=styles[row["model"]]["marker"], capsize=3, ms=6,
                        color=styles[row["model"]]["color"], label=row["model"])  # fmt: skip
        _log_axis(ax)
        ax.set_xlabel(label, fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test {metric}", fontsize=FONT)
    fig.suptitle(f"{task}: score vs cost", fontsize=FONT + 1)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.83, 0.5), fontsize=FONT - 1, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    return fig


def _error_bar(row: pd.Series) -> list[list[float]] | float:
    """The asymmetric 95% CI of one seed, else the sd over seeds (0 when neither is known)."""
    low, high, y = row.get("test_primary_ci_low"), row.get("test_primary_ci_high"), row["test_primary"]
    if row["n_seeds"] == 1 and pd.notna(low) and pd.notna(high):
        return [[max(y - low, 0.0)], [max(high - y, 0.0)]]
    sd = row.get("test_primary_sd")
    return float(sd) if pd.notna(sd) else 0.0


def curves_figure(task: str, predictions: dict[str, pd.DataFrame],
                  styles: dict[str, dict[str, str]] | None = None) -> Figure:  # fmt: skip
    """ROC and PR curves of the best run per model, overlaid (binary predictions: columns label, score); the legend
    below the axes names each model with its AUROC and AUPRC."""
    styles = styles or model_styles(list(predictions))
    ncol = 3 if len(predictions) > 4 else 2
    rows = -(-(len(predictions) + 1) // ncol)  # + the chance / prevalence line
    fig = Figure(figsize=(WIDTH, 4.2 + 0.2 * rows))
    roc_ax, pr_ax = fig.subplots(1, 2)
    ranked = sorted(predictions, key=lambda m: -roc_auc_score(predictions[m]["label"], predictions[m]["score"]))
    for k, model in enumerate(ranked):  # legend order: best AUROC first
        y, s = predictions[model]["label"].to_numpy(), predictions[model]["score"].to_numpy()
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        label = f"{model} (AUROC {roc_auc_score(y, s):.3f}, AUPRC {average_precision_score(y, s):.3f})"
        line = {"lw": 1.4, "color": styles[model]["color"], "ls": "-" if k < 10 else (0, (4, 1.5))}
        roc_ax.plot(fpr, tpr, label=label, **line)
        pr_ax.plot(recall, precision, **line)
    prevalence = float(next(iter(predictions.values()))["label"].mean())
    roc_ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label=f"chance (PR: prevalence {prevalence:.2f})")
    pr_ax.axhline(prevalence, ls="--", c="grey", lw=0.8)
    for ax, (x, y, name) in ((roc_ax, ("false positive rate", "true positive rate", "ROC")),
                             (pr_ax, ("recall", "precision", "precision-recall"))):  # fmt: skip
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.set_xlabel(x, fontsize=FONT)
        ax.set_ylabel(y, fontsize=FONT)
        ax.set_title(f"{task}: {name} (test)", fontsize=FONT + 1)
        ax.tick_params(labelsize=FONT)
    fig.legend(*roc_ax.get_legend_handles_labels(), loc="lower center", ncol=ncol, fontsize=FONT - 1,
               frameon=False, bbox_to_anchor=(0.5, 0))  # fmt: skip
    fig.tight_layout(rect=(0, (0.19 * rows + 0.1) / fig.get_figheight(), 1, 1))
    return fig


def group_auroc_figure(task: str, per_label: dict[str, pd.DataFrame],
                       styles: dict[str, dict[str, str]] | None = None) -> Figure:  # fmt: skip
    """Per-group AUROC distributions of a multi-label task: one panel per label group, one horizontal box (and its
    labels as ticks) per model; "no AUROC" where a group has no label with both classes in the test split."""
    styles = styles or model_styles(list(per_label))
    frame = pd.concat([f.assign(model=m) for m, f in per_label.items()])
    groups, models = sorted(frame["group"].astype(str).unique()), sorted(per_label)
    fig = Figure(figsize=(WIDTH, 1.3 + 0.3 * len(models)))
    axes = np.atleast_1d(fig.subplots(1, len(groups), sharey=True, squeeze=False)[0])
    for ax, group in zip(axes, groups, strict=True):
        part = frame[frame["group"].astype(str) == group]
        for k, model in enumerate(models):
            values = part.loc[part["model"] == model, "auroc"].dropna().to_numpy()
            if len(values) == 0:
                ax.text(0.5, k, "no AUROC", va="center", ha="center", fontsize=FONT - 1, color="grey")
                continue
            ax.boxplot([values], positions=[k], widths=0.6, orientation="horizontal", patch_artist=True,
                       showfliers=False, boxprops={"facecolor": styles[model]["color"], "alpha": 0.5},
                       medianprops={"color": "black"})  # fmt: skip
            ax.plot(values, np.full(len(values), k), "o" if len(values) == 1 else "|", color=styles[model]["color"]
                    if len(values) == 1 else "black", ms=6, alpha=0.8)  # fmt: skip
        n_labels = part["label"].nunique() if "label" in part else 0
        scored = part.dropna(subset=["auroc"])["label"].nunique() if "label" in part else 0
        both = "" if scored == n_labels else f", {scored} with both classes in test"
        ax.set_title(f"{group} ({n_labels} labels{both})", fontsize=FONT)
        ax.set_xlim(0, 1)
        ax.axvline(0.5, ls="--", c="grey", lw=0.8)
        ax.set_xlabel("test AUROC per label", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    axes[0].set_yticks(range(len(models)), models)
    axes[0].set_ylim(len(models) - 0.4, -0.6)  # first model on top
    fig.suptitle(f"{task}: per-group AUROC", fontsize=FONT + 1)
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
            chromatin = isinstance(run.get("tags.task"), str)  # EPI runs have no task tag (a task per cell)
            keys = ("model", "task", "assay", "train_cells") if chromatin else ("model",)
            what = " ".join(str(run.get(f"tags.{k}")) for k in keys)
            title = f"transfer {what} s{run.get('tags.seed')}: test {metric.upper()}"
            figures.append((title, png(heatmap(frame, title))))
    if not figures:
        return None
    note = (
        "Rows: training cell line (EPI) or the trained output of a training cell type (chromatin); columns: the "
        "test split of each cell line, or each cell type's label of the run's assay on the task's test split."
    )
    return Section("Cross-cell transfer", note, figures=figures)


def figure_sections(experiment: str, runs: pd.DataFrame, tables: dict[str, pd.DataFrame], tmp: Path) -> list[Section]:
    """Figure sections of the report; artifacts are downloaded under `tmp`."""
    scored = {t: tab[tab["n_seeds"] > 0] for t, tab in tables.items() if (tab["n_seeds"] > 0).any()}
    if not scored:
        return []
    styles = model_styles(sorted({m for tab in scored.values() for m in tab["model"]}))
    note = ("Mean over seeds; colour runs from the worst (dark) to the best (yellow) model of each task, since the "
            "tasks' metrics differ; blank: not scored.")  # fmt: skip
    sections = [Section("Primary metric by task and model", note,
                        figures=[("model x task heatmap", png(metric_heatmap(scored)))])]  # fmt: skip
    note = "Error bars: the 95% CI of one seed, or the sd over seeds. Wall time: the whole cell (tuning and refit)."
    sections.append(Section("Score vs cost", note, figures=[(f"{t} score vs cost", png(cost_scatter(t, tab, styles)))
                                                            for t, tab in scored.items()]))  # fmt: skip
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
            figures.append((f"{task} ROC and PR curves", png(curves_figure(task, predictions, styles))))
        if per_label:
            figures.append((f"{task} per-group AUROC", png(group_auroc_figure(task, per_label, styles))))
        if figures:
            sections.append(Section(f"Curves: {task}", "Best seed per model.", figures=figures))
    if any(t.startswith("epi.") for t in tables):
        transfer = transfer_section(experiment, tmp)
        if transfer is not None:
            sections.append(transfer)
    return sections
