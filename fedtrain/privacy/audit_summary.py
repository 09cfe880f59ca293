"""The figures of one audited population (a hospital, or all of them): one dict for audit.json.

``summarise(pos, neg, ...)`` takes member/non-member counts per score level (exact scores of one
hospital, or the summed histograms of all hospitals) and returns the attack AUROC and the TPR at
0.1 % and 1 % FPR, each with a percentile bootstrap interval, the empirical ε lower bound and
the ROC sampled on a log-spaced FPR grid (for plots).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from crypten_fl.fedtrain.privacy.attack_metrics import (
    REPORTED_FPRS,
    auroc,
    bootstrap_counts,
    fpr_grid,
    percentile_interval,
    resolved,
    roc,
    roc_on_grid,
    roc_vertices,
    tpr_at_fpr,
)
from crypten_fl.fedtrain.privacy.epsilon_bound import epsilon_lower_bound


def fpr_key(alpha: float) -> str:
    """JSON key of a reported FPR (``0.001`` → ``"0.001"``)."""
    return f"{alpha:g}"


def summarise(pos: np.ndarray, neg: np.ndarray, *, delta: float, replicates: int,
              rng: np.random.Generator, confidence: float = 0.95) -> dict[str, Any]:
    """Attack figures of counts ``pos``/``neg`` (scores ascending); ``replicates = 0``: no CIs."""
    curve = roc(pos, neg)
    boot = bootstrap_counts(pos, neg, replicates, rng) if replicates else None
    boot_roc = roc_vertices(*boot) if boot is not None else None

    def interval(values: np.ndarray | None) -> list[float] | None:
        return None if values is None else percentile_interval(values, confidence)

    tprs = {}
    for alpha in REPORTED_FPRS:
        tprs[fpr_key(alpha)] = {
            "value": float(tpr_at_fpr(curve.fpr, curve.tpr, alpha)),
            "ci": interval(None if boot_roc is None else
                           np.atleast_1d(tpr_at_fpr(*boot_roc, alpha))),
            "resolved": resolved(curve.n_neg, alpha),
        }
    grid = fpr_grid()
    return {
        "members": curve.n_pos,
        "non_members": curve.n_neg,
        "auroc": {"value": float(auroc(pos, neg)),
                  "ci": interval(None if boot is None else np.atleast_1d(auroc(*boot)))},
        "tpr_at_fpr": tprs,
        "epsilon_lower_bound": epsilon_lower_bound(pos, neg, delta, confidence).to_json(),
        "roc": {"fpr": grid, "tpr": roc_on_grid(curve, grid)},
    }
