"""Metrics pooled over hospitals without pooling predictions: only summed histograms are revealed.

Each hospital bins its predicted probabilities per label into positive and negative histograms
(``bins`` bins) and adds its per-label squared-error sums; the vectors are summed across hospitals
by secure aggregation and all metrics are computed from the totals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from crypten_fl.fedtrain.metrics.classification import (
    auroc_from_histograms,
    confusion_from_histograms,
    histogram_counts,
    macro_average,
    metrics_from_confusion,
)
from crypten_fl.fedtrain.secure import tags

SumFn = Callable[..., torch.Tensor]  # aggregator.sum(vector, what=...)


def local_summary(probs: np.ndarray, labels: np.ndarray, bins: int) -> torch.Tensor:
    """This hospital's additive summary: [pos hist (L·B), neg hist (L·B), squared errors (L)]."""
    pos, neg = histogram_counts(probs, labels, bins)
    sse = ((np.asarray(probs, dtype=np.float64) - labels) ** 2).sum(axis=0)
    return torch.from_numpy(np.concatenate([pos.ravel(), neg.ravel(), sse]).astype(np.float64))


def metrics_from_summary(total: np.ndarray, label_names: Sequence[str], bins: int,
                         threshold: float = 0.5) -> dict[str, Any]:
    """Per-label and macro metrics from a (summed) summary vector."""
    n_labels = len(label_names)
    total = np.asarray(total, dtype=np.float64)
    pos = np.rint(total[: n_labels * bins]).reshape(n_labels, bins)
    neg = np.rint(total[n_labels * bins : 2 * n_labels * bins]).reshape(n_labels, bins)
    sse = total[2 * n_labels * bins :]
    auroc = np.atleast_1d(auroc_from_histograms(pos, neg))
    confusion = confusion_from_histograms(pos, neg, threshold)
    per_label: dict[str, dict[str, float]] = {}
    for i, name in enumerate(label_names):
        n = float(pos[i].sum() + neg[i].sum())
        counts = {k: float(np.asarray(v)[i]) for k, v in confusion.items()}
        per_label[name] = {"auroc": float(auroc[i]), **metrics_from_confusion(**counts),
                           "mse": float(sse[i] / n) if n else float("nan"),
                           "n": int(n), "positives": int(pos[i].sum())}
    return {"labels": per_label, "macro": macro_average(per_label),
            "method": f"secure histograms ({bins} bins)", "threshold": threshold}


def pooled_metrics(sum_fn: SumFn, probs: np.ndarray, labels: np.ndarray,
                   label_names: Sequence[str], bins: int = 1000) -> dict[str, Any]:
    """Metrics over all hospitals' test data; ``sum_fn`` is the secure sum across hospitals."""
    total = sum_fn(local_summary(probs, labels, bins), what=tags.METRIC_HISTOGRAMS).numpy()
    return metrics_from_summary(total, label_names, bins)
