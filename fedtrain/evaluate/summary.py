"""Additive evaluation summaries and the metrics computed from them (or from exact predictions).

What one hospital contributes to a secure sum for one set of rows (all its test stays, or one
subgroup), for ``L`` labels, ``B`` bins and per-label thresholds ``t``, as one float64 vector:

    [positives histogram (L·B), negatives histogram (L·B), Σ(p − y)² (L), TP (L), FP (L), TN (L),
     FN (L)]

with TP … FN counted exactly (``p ≥ t_l`` is positive). Every part is a sum over rows, so the
element-wise sum over hospitals is the summary of the pooled rows: AUROC comes from the pooled
histograms (binned, see fedtrain/metrics/classification.py), everything else is exact.

Metrics returned (both here and by :func:`exact_metrics`, the plaintext reference):
``{"labels": {name: {auroc, accuracy, precision, recall, f1, specificity, mse, n, positives}},
"macro": unweighted mean over labels (NaN skipped), "micro": all (stay, label) pairs pooled}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from crypten_fl.fedtrain.metrics.classification import (
    auroc_from_histograms,
    binary_metrics,
    confusion_counts,
    histogram_counts,
    macro_average,
    metrics_from_confusion,
    roc_auc,
)

CONFUSION = ("tp", "fp", "tn", "fn")


def summary_length(n_labels: int, bins: int) -> int:
    """Length of one summary vector."""
    return 2 * n_labels * bins + 5 * n_labels


def local_summary(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, bins: int
                  ) -> np.ndarray:
    """The summary vector of ``(N, L)`` probabilities and 0/1 labels (N may be 0)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n_labels = len(thresholds)
    p, y = p.reshape(-1, n_labels), y.reshape(-1, n_labels)
    pos, neg = histogram_counts(p, y, bins)
    counts = [confusion_counts(y[:, j], p[:, j], float(thresholds[j])) for j in range(n_labels)]
    confusion = np.array([[c[k] for c in counts] for k in CONFUSION], dtype=np.float64)
    sse = ((p - y) ** 2).sum(axis=0)
    return np.concatenate([pos.ravel(), neg.ravel(), sse, confusion.ravel()]).astype(np.float64)


def split_summary(vector: np.ndarray, n_labels: int, bins: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(pos ``(L, B)``, neg ``(L, B)``, sse ``(L,)``, {tp, fp, tn, fn: ``(L,)``}) of a summary;
    counts are rounded to integers (a secure sum carries fixed-point noise)."""
    v = np.asarray(vector, dtype=np.float64)
    if v.size != summary_length(n_labels, bins):
        raise ValueError(f"summary of length {v.size}, expected {summary_length(n_labels, bins)}")
    hist = n_labels * bins
    pos = np.rint(v[:hist]).reshape(n_labels, bins)
    neg = np.rint(v[hist : 2 * hist]).reshape(n_labels, bins)
    sse = v[2 * hist : 2 * hist + n_labels]
    rest = np.rint(v[2 * hist + n_labels :]).reshape(4, n_labels)
    return pos, neg, sse, dict(zip(CONFUSION, rest, strict=True))


def _label_metrics(auroc: float, counts: dict[str, float], sse: float, n: float,
                   positives: float) -> dict[str, float]:
    return {"auroc": auroc, **metrics_from_confusion(**counts),
            "mse": float(sse / n) if n else float("nan"), "n": int(n), "positives": int(positives)}


def metrics_from_summary(vector: np.ndarray, label_names: Sequence[str], bins: int
                         ) -> dict[str, Any]:
    """Per-label, macro and micro metrics from a (summed) summary vector."""
    n_labels = len(label_names)
    pos, neg, sse, confusion = split_summary(vector, n_labels, bins)
    auroc = np.atleast_1d(auroc_from_histograms(pos, neg))
    per_label = {}
    for j, name in enumerate(label_names):
        counts = {k: float(v[j]) for k, v in confusion.items()}
        per_label[name] = _label_metrics(float(auroc[j]), counts, float(sse[j]),
                                         pos[j].sum() + neg[j].sum(), pos[j].sum())
    micro_counts = {k: float(v.sum()) for k, v in confusion.items()}
    micro = _label_metrics(float(auroc_from_histograms(pos.sum(0), neg.sum(0))), micro_counts,
                           float(sse.sum()), pos.sum() + neg.sum(), pos.sum())
    micro["n"] = int((pos[0].sum() + neg[0].sum()) if n_labels else 0)  # stays, not pairs
    return {"labels": per_label, "macro": macro_average(per_label), "micro": micro}


def exact_metrics(probs: np.ndarray, labels: np.ndarray, label_names: Sequence[str],
                  thresholds: np.ndarray) -> dict[str, Any]:
    """The same metrics from plaintext predictions (exact AUROC, same thresholds)."""
    n_labels = len(label_names)
    p = np.asarray(probs, dtype=np.float64).reshape(-1, n_labels)
    y = np.asarray(labels, dtype=np.float64).reshape(-1, n_labels)
    per_label = {name: binary_metrics(y[:, j], p[:, j], float(thresholds[j]))
                 for j, name in enumerate(label_names)}
    counts = [confusion_counts(y[:, j], p[:, j], float(thresholds[j])) for j in range(n_labels)]
    micro_counts = {k: float(sum(c[k] for c in counts)) for k in CONFUSION}
    micro = _label_metrics(roc_auc(y.ravel(), p.ravel()), micro_counts,
                           float(((p - y) ** 2).sum()), y.size, y.sum())
    micro["n"] = int(y.shape[0])
    return {"labels": per_label, "macro": macro_average(per_label), "micro": micro}
