"""The ROC figure of an audit: linear axes and log-log axes (as in the LiRA paper)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from crypten_fl.fedtrain.evaluate.plots import DPI


def attack_roc_figure(path: Path, report: dict[str, Any]) -> None:
    """Per-hospital ROC curves (thin) and the overall one (black), with the chance diagonal."""
    curves = [(name, m, 1.0) for name, m in report["per_hospital"].items()]
    curves.append(("overall", report["overall"], 2.2))
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.4))
    smallest = 1.0 / max(report["overall"]["non_members"], 1)
    for ax, log in zip(axes, (False, True), strict=True):
        ax.plot([1e-5, 1], [1e-5, 1], ls="--", lw=0.8, color="grey", label="chance")
        for name, m, width in curves:
            fpr, tpr = np.asarray(m["roc"]["fpr"]), np.asarray(m["roc"]["tpr"])
            keep = fpr > 0 if log else slice(None)
            label = f"{name} (AUROC {m['auroc']['value']:.3f})"
            ax.plot(fpr[keep], tpr[keep], lw=width, label=label,
                    color="black" if name == "overall" else None)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(min(1e-3, smallest) / 2, 1)
            ax.set_ylim(min(1e-3, smallest) / 2, 1.02)
            ax.axvline(smallest, ls=":", lw=0.8, color="grey")
            ax.set_title("log-log (dotted: 1 / non-members)", fontsize=10)
        else:
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.01)
            ax.set_title("linear", fontsize=10)
        ax.set_xlabel("false-positive rate (non-members called members)")
        ax.set_ylabel("true-positive rate (members found)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"membership inference, {report['attack']['name']} attack, "
                 f"{report['strategy']} run", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
