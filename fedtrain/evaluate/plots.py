"""PNG figures of evaluate, compare and sweep (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from crypten_fl.fedtrain.evaluate.thresholds import edge_confusion
from crypten_fl.fedtrain.metrics.classification import auroc_from_histograms
from matplotlib.ticker import NullFormatter

DPI = 120


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def roc_curves(path: Path, pos: np.ndarray, neg: np.ndarray, names: Sequence[str]) -> None:
    """One ROC curve per disease from the pooled test histograms ``(L, B)``."""
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    tp, fp, _, _ = edge_confusion(pos, neg)
    for j, ax in enumerate(axes.ravel()):
        if j >= len(names):
            ax.axis("off")
            continue
        n_pos, n_neg = pos[j].sum(), neg[j].sum()
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
        if n_pos and n_neg:
            ax.plot(fp[j] / n_neg, tp[j] / n_pos, lw=1.5)
        auc = auroc_from_histograms(pos[j], neg[j])
        ax.set_title(f"{names[j]}\nAUROC {auc:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("1 − specificity", fontsize=8)
        ax.set_ylabel("sensitivity", fontsize=8)
        ax.tick_params(labelsize=7)
    _save(fig, path)


def heatmap(path: Path, values: np.ndarray, rows: Sequence[str], cols: Sequence[str],
            title: str) -> None:
    """Annotated heatmap (e.g. AUROC per hospital × disease); NaN cells are left blank."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(cols), 1.2 + 0.5 * len(rows)))
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0.5, vmax=1.0, cmap="viridis",
                      aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] < 0.75 else "black")
    fig.colorbar(image, ax=ax, label="AUROC")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def subgroup_bars(path: Path, groups: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Macro AUROC per subgroup, one panel per family, stays counted under each bar."""
    fig, axes = plt.subplots(1, len(groups), figsize=(4.0 * len(groups), 3.6), squeeze=False)
    for ax, (family, members) in zip(axes.ravel(), groups.items(), strict=True):
        shown = {g: m for g, m in members.items() if m["micro"]["n"]}
        values = [m["macro"]["auroc"] for m in shown.values()]
        bars = ax.bar(range(len(shown)), np.nan_to_num(values, nan=0.0), color="tab:blue")
        ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) else "n/a" for v in values],
                     fontsize=7)
        ax.set_xticks(range(len(shown)),
                      [f"{g}\nn={m['micro']['n']}" for g, m in shown.items()], fontsize=8)
        ax.set_ylim(0, 1)
        ax.axhline(0.5, ls="--", lw=0.8, color="grey")
        ax.set_title(f"macro AUROC by {family}", fontsize=10)
    _save(fig, path)


def grouped_bars(path: Path, categories: Sequence[str], series: dict[str, Sequence[float]],
                 ylabel: str, title: str, reference: float | None = None) -> None:
    """Bars per category, one colour per series (e.g. AUROC per disease for each run)."""
    width = 0.8 / max(len(series), 1)
    bars = len(categories) * max(len(series), 1)
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 2.0 + 0.3 * bars)), 4.0))
    x = np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, np.nan_to_num(values, nan=0.0), width,
               label=name)
    if reference is not None:
        ax.axhline(reference, ls="--", lw=0.8, color="grey")
    ax.set_xticks(x, categories, rotation=45 if len(categories) > 6 else 0, ha="right"
                  if len(categories) > 6 else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)


def epsilon_curve(path: Path, epsilons: Sequence[float], auroc: Sequence[float],
                  non_private: float | None, strategy: str,
                  attack: Sequence[float] | None = None) -> None:
    """Macro AUROC against ε (log axis), the non-private value as a horizontal line; with
    ``attack``, the membership-inference attack's AUROC at each ε and chance (0.5)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    if epsilons:
        ax.plot(epsilons, auroc, marker="o", label=f"{strategy}, DP-SGD"
                + ("" if attack is None else ": task macro-AUROC"))
    if epsilons and attack is not None:
        ax.plot(epsilons, attack, marker="s", ls=":", color="tab:red",
                label="membership attack AUROC")
        ax.axhline(0.5, ls=":", color="grey", lw=0.8, label="chance")
    if non_private is not None and math.isfinite(non_private):
        ax.axhline(non_private, ls="--", color="black", label="no DP (ε = ∞)")
    ax.set_xscale("log")
    if epsilons:
        ax.set_xticks(list(epsilons), [f"{e:g}" for e in epsilons])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("target ε (per hospital, whole run)")
    ax.set_ylabel("macro AUROC (test)" if attack is None else "AUROC")
    ax.set_title("privacy–utility trade-off", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)


def evaluation_figures(out: Path, report: dict[str, Any], histograms: tuple[np.ndarray, ...]
                       ) -> list[str]:
    """Write the figures of an evaluation report; returns their file names."""
    names = report["label_names"]
    written = ["roc_curves.png", "hospital_auroc.png"]
    roc_curves(out / written[0], histograms[0], histograms[1], names)
    hospitals = list(report["per_hospital"])
    values = np.array([[report["per_hospital"][h]["labels"][n]["auroc"] for n in names]
                       for h in hospitals], dtype=np.float64).reshape(len(hospitals), len(names))
    heatmap(out / written[1], values, hospitals, names, "AUROC per hospital (own test stays)")
    if report.get("subgroups"):
        subgroup_bars(out / "subgroup_auroc.png", report["subgroups"])
        written.append("subgroup_auroc.png")
    cross = report.get("cross_hospital")
    if cross:
        metrics = list(cross["summary"])
        series = {"mean": [cross["summary"][m]["retained_pct"] for m in metrics]}
        series |= {h: [row[m]["retained_pct"] for m in metrics]
                   for h, row in cross["per_hospital"].items()}
        grouped_bars(out / "cross_hospital_retained.png", metrics, series,
                     "retained on the unseen hospital (%)",
                     "leave-one-hospital-out: unseen / seen × 100", reference=100.0)
        written.append("cross_hospital_retained.png")
    return written
