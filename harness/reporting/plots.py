"""Figures and tables logged as run artifacts: ROC / PR curves, confusion matrix, predictions."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve


def _named(model: str | None, metric: str, value: float) -> str:
    return f"{model + ' ' if model else ''}({metric} {value:.3f})"


def roc_figure(y_true: np.ndarray, y_score: np.ndarray, title: str, model: str | None = None) -> Figure:
    """The ROC curve, named `model (AUROC 0.871)` in a legend below the axes."""
    fpr, tpr, _ = roc_curve(y_true, y_score)
    fig, ax = plt.subplots(figsize=(4.5, 5.0))
    ax.plot(fpr, tpr, lw=1.5, label=_named(model, "AUROC", roc_auc_score(y_true, y_score)))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def pr_figure(y_true: np.ndarray, y_score: np.ndarray, title: str, model: str | None = None) -> Figure:
    """The precision-recall curve, named `model (AUPRC 0.802)` in a legend below the axes (not over the curve)."""
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    fig, ax = plt.subplots(figsize=(4.5, 5.0))
    ax.plot(recall, precision, lw=1.5, label=_named(model, "AUPRC", average_precision_score(y_true, y_score)))
    ax.axhline(float(np.mean(y_true)), ls="--", c="grey", lw=0.8, label=f"prevalence {np.mean(y_true):.2f}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def confusion_figure(y_true: np.ndarray, y_score: np.ndarray, threshold: float, title: str) -> Figure:
    cm = confusion_matrix(y_true.astype(int), (y_score >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="true", title=f"{title} (t={threshold:.2f})")
    fig.tight_layout()
    return fig


def predictions_table(ids: np.ndarray, y_true: np.ndarray, y_score: np.ndarray) -> pd.DataFrame:
    """One row per sequence: id, label(s), score(s)."""
    if y_score.ndim == 1:
        return pd.DataFrame({"id": ids, "label": y_true, "score": y_score})
    cols = {"id": ids}
    cols.update({f"label_{j}": y_true[:, j] for j in range(y_true.shape[1])})
    cols.update({f"score_{j}": y_score[:, j] for j in range(y_score.shape[1])})
    return pd.DataFrame(cols)


def close(fig: Figure) -> None:
    plt.close(fig)
