"""Figures of per-base interpretation: ISM mutation maps, attribution logos, base-level attention maps."""

from __future__ import annotations

import logomaker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.data.encode import N_CODE
from harness.reporting import plots

_BASES = list("ACGT")


def _width(length: int) -> float:
    return float(np.clip(length / 12, 6, 40))


def mutation_map_figure(delta: np.ndarray, codes: np.ndarray, title: str) -> Figure:
    """ISM heatmap of `delta (L, 4)` (NaN outside the window, not drawn); reference bases marked with a dot."""
    shown = np.flatnonzero(np.isfinite(delta).any(1))
    start, end = (int(shown[0]), int(shown[-1]) + 1) if shown.size else (0, len(delta))
    part = delta[start:end].T  # (4, W)
    limit = float(np.nanmax(np.abs(part))) if np.isfinite(part).any() else 1.0
    fig, ax = plots.plt.subplots(figsize=(_width(end - start), 2.4))
    image = ax.imshow(
        part,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-limit or -1,
        vmax=limit or 1,
        interpolation="nearest",
        extent=(start + 0.5, end + 0.5, 3.5, -0.5),
    )
    ref = codes[start:end]
    real = ref < N_CODE
    ax.scatter(np.arange(start, end)[real] + 1, ref[real], s=4, c="black", marker="o")
    ax.set(yticks=range(4), yticklabels=_BASES, xlabel="position (1-based)", title=title)
    fig.colorbar(image, ax=ax, label="Δ logit", fraction=0.03, pad=0.01)
    fig.tight_layout()
    return fig


def logo_figure(matrix: np.ndarray, title: str, ylabel: str) -> Figure:
    """A logomaker logo of `(L, 4)` attributions (positive letters up, negative down); NaN rows drawn empty."""
    frame = pd.DataFrame(np.nan_to_num(matrix), columns=_BASES, index=np.arange(1, len(matrix) + 1))
    fig, ax = plots.plt.subplots(figsize=(_width(len(matrix)), 2.2))
    logomaker.Logo(frame, ax=ax, color_scheme="classic", flip_below=False)
    ax.axhline(0, c="grey", lw=0.5)
    ax.set(xlabel="position (1-based)", ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig


def attention_figure(maps: np.ndarray, title: str) -> Figure:
    """Base-level attention `(n_layers, H, L, L)` as a layers × heads grid of heatmaps (rows: queries)."""
    n_layers, n_heads = maps.shape[:2]
    fig, axes = plots.plt.subplots(n_layers, n_heads, figsize=(3.6 * n_heads, 3.4 * n_layers), squeeze=False)
    length = maps.shape[-1]
    for (layer, head), ax in np.ndenumerate(axes):
        ax.imshow(
            maps[layer, head], cmap="viridis", interpolation="nearest", extent=(0.5, length + 0.5, length + 0.5, 0.5)
        )
        ax.set(title=f"layer {layer + 1}, head {head + 1}", xlabel="key base", ylabel="query base")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
