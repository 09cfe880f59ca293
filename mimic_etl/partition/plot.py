"""FED/label_prevalence.png: a heatmap of label prevalence per label × hospital."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from crypten_fl.mimic_etl.partition.summary import PartitionSummary


def plot_label_prevalence(summary: PartitionSummary, path: Path) -> None:
    """Write the heatmap: one row per label, one column per hospital holding labels, plus pooled.

    Uses the Agg canvas directly (no pyplot, no global backend state), so it works headless;
    matplotlib is imported here so that readers of FED/ do not pay for it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labelled = [h for h in summary.hospitals if h.prevalence is not None]
    names = list(summary.pooled_prevalence)
    columns = [f"H{h.hospital}\n{h.stays} stays" for h in labelled] + ["pooled"]
    grid = np.array(
        [[h.prevalence[n] for h in labelled] + [summary.pooled_prevalence[n]] for n in names]
        if labelled
        else [[summary.pooled_prevalence[n]] for n in names],
        dtype=np.float64,
    )
    width = min(4.0 + 0.9 * len(columns), 30.0)
    fig = Figure(figsize=(width, 0.45 * len(names) + 2.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(
        grid, cmap="viridis", vmin=0.0, vmax=max(float(np.nanmax(grid)), 1e-9), aspect="auto"
    )
    ax.set_xticks(range(len(columns)), columns, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.axvline(len(columns) - 1.5, color="white", linewidth=2)
    if len(columns) <= 24:
        for (i, j), value in np.ndenumerate(grid):
            colour = "black" if value > 0.6 * grid.max() else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, label="prevalence (share of positive stays)")
    kind = "vertical" if summary.vertical else summary.scheme
    ax.set_title(
        f"Label prevalence per hospital — {kind}, mean JS divergence "
        f"{summary.mean_js_divergence:.3f}",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
