"""Multi-label classification metrics as pure functions returning plain dicts.

Exact metrics (one hospital, or pooled predictions), per label and macro-averaged:

* ``auroc``: rank-based (Mann–Whitney U) with average ranks for ties, equal to sklearn's
  ``roc_auc_score``. A label whose ``y_true`` has a single class has AUROC = NaN.
* at a threshold t (default 0.5; predicted positive iff p ≥ t): ``accuracy``, ``precision``
  TP/(TP+FP), ``recall`` TP/(TP+FN), ``f1``, ``specificity`` TN/(TN+FP); a zero denominator
  gives 0.0 (sklearn's ``zero_division=0``).
* ``mse``: the Brier score, mean of (p − y)².
* macro = unweighted mean over labels, skipping NaN values (so single-class labels do not count
  towards the macro AUROC; the macro is NaN if every label is NaN).

Histogram forms, which the secure evaluation sums element-wise across hospitals without
revealing any hospital's predictions: :func:`histogram_counts` bins probabilities into ``bins``
equal-width bins on [0, 1] per class; :func:`auroc_from_histograms` is the trapezoid AUROC where
pairs in the same bin count 1/2 (the exact AUROC of the binned scores; its error vs. the exact
AUROC is at most half the share of positive/negative pairs that fall in a common bin);
:func:`confusion_from_histograms` gives the confusion counts at a threshold, exact when the
threshold is a bin edge (0.5 with any even ``bins``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1", "specificity")


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Exact AUROC with ties counted 1/2; NaN if only one class is present."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    group_start = np.cumsum(counts) - counts  # 0-based rank of each group's first element
    average_rank = group_start + (counts + 1) / 2.0  # 1-based average rank within a tie group
    rank_sum = average_rank[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def metrics_from_confusion(tp: float, fp: float, tn: float, fn: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and specificity from confusion counts."""
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "specificity": _ratio(tn, tn + fp),
    }


def confusion_counts(
    y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5
) -> dict[str, int]:
    """TP, FP, TN, FN of one label with ``p ≥ threshold`` predicted positive."""
    y = np.asarray(y_true).astype(bool).ravel()
    pred = np.asarray(prob, dtype=np.float64).ravel() >= threshold
    return {
        "tp": int((pred & y).sum()),
        "fp": int((pred & ~y).sum()),
        "tn": int((~pred & ~y).sum()),
        "fn": int((~pred & y).sum()),
    }


def binary_metrics(
    y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """All exact metrics of one label (plus ``n`` and ``positives``)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    out = {"auroc": roc_auc(y, p)}
    out.update(metrics_from_confusion(**confusion_counts(y, p, threshold)))
    out["mse"] = float(np.mean((p - y) ** 2)) if y.size else float("nan")
    out["n"] = int(y.size)
    out["positives"] = int(y.sum())
    return out


def macro_average(per_label: dict[str, dict[str, float]]) -> dict[str, float]:
    """Unweighted mean over labels of each metric, skipping NaN (NaN if all are NaN)."""
    names = [k for k in next(iter(per_label.values())) if k not in ("n", "positives")]
    macro: dict[str, float] = {}
    for name in names:
        vals = np.array([m[name] for m in per_label.values()], dtype=np.float64)
        finite = vals[~np.isnan(vals)]
        macro[name] = float(finite.mean()) if finite.size else float("nan")
    macro["labels_with_auroc"] = int(sum(not np.isnan(m["auroc"]) for m in per_label.values()))
    return macro


def multilabel_metrics(
    labels: np.ndarray,
    probs: np.ndarray,
    threshold: float = 0.5,
    label_names: Sequence[str] | None = None,
) -> dict[str, dict]:
    """``{"per_label": {name: metrics}, "macro": metrics}`` for ``(N, L)`` labels/probabilities."""
    y = np.asarray(labels)
    p = np.asarray(probs)
    if y.ndim != 2 or y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must both be (N, L)")
    names = list(label_names) if label_names is not None else [str(i) for i in range(y.shape[1])]
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} label names for {y.shape[1]} labels")
    per_label = {n: binary_metrics(y[:, i], p[:, i], threshold) for i, n in enumerate(names)}
    return {"per_label": per_label, "macro": macro_average(per_label)}


def bin_edges(bins: int) -> np.ndarray:
    """The ``bins + 1`` edges ``k / bins`` of the probability histogram."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    return np.arange(bins + 1, dtype=np.float64) / bins


def _bin_index(prob: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each probability: bin k holds ``edges[k] ≤ p < edges[k+1]``; p ≥ 1 → last bin."""
    if np.isnan(prob).any():
        raise ValueError("probabilities contain NaN")
    index = np.searchsorted(bin_edges(bins), prob, side="right") - 1
    return np.clip(index, 0, bins - 1)


def histogram_counts(
    probs: np.ndarray, labels: np.ndarray, bins: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of positives and of negatives per probability bin (int64).

    ``(N,)`` inputs give ``(bins,)`` histograms; ``(N, L)`` inputs give ``(L, bins)``.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if p.shape != y.shape or p.ndim not in (1, 2):
        raise ValueError(f"probs {p.shape} and labels {y.shape} must both be (N,) or (N, L)")
    if p.ndim == 1:
        index = _bin_index(p, bins)
        return (
            np.bincount(index[y], minlength=bins).astype(np.int64),
            np.bincount(index[~y], minlength=bins).astype(np.int64),
        )
    pairs = [histogram_counts(p[:, j], y[:, j], bins) for j in range(p.shape[1])]
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def auroc_from_histograms(pos_hist: np.ndarray, neg_hist: np.ndarray) -> float | np.ndarray:
    """Trapezoid AUROC of binned scores, ties within a bin counted 1/2 (NaN if a class is empty).

    ``(bins,)`` → float; ``(L, bins)`` → ``(L,)`` array.
    """
    pos = np.asarray(pos_hist, dtype=np.float64)
    neg = np.asarray(neg_hist, dtype=np.float64)
    if pos.shape != neg.shape:
        raise ValueError(f"histograms differ in shape: {pos.shape} vs {neg.shape}")
    neg_below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=-1)
    pairs = pos.sum(axis=-1) * neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)
    return float(auc) if auc.ndim == 0 else auc


def confusion_from_histograms(
    pos_hist: np.ndarray, neg_hist: np.ndarray, threshold: float = 0.5
) -> dict[str, int | np.ndarray]:
    """TP, FP, TN, FN with bins from the first edge ≥ ``threshold`` predicted positive.

    Equals :func:`confusion_counts` when ``threshold`` is a bin edge ``k / bins``.
    """
    pos = np.asarray(pos_hist, dtype=np.int64)
    neg = np.asarray(neg_hist, dtype=np.int64)
    bins = pos.shape[-1]
    first = min(int(np.searchsorted(bin_edges(bins), threshold, side="left")), bins)
    counts = {
        "tp": pos[..., first:].sum(axis=-1),
        "fp": neg[..., first:].sum(axis=-1),
        "tn": neg[..., :first].sum(axis=-1),
        "fn": pos[..., :first].sum(axis=-1),
    }
    return {k: int(v) if v.ndim == 0 else v for k, v in counts.items()}
