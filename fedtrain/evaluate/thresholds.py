"""Decision thresholds per label, chosen on (pooled) validation score histograms.

A rule turns the positive and negative score histograms of one label (``B`` equal-width bins on
[0, 1]) into a threshold ``t``; a stay is predicted positive iff its probability is ``≥ t``.

* ``youden``: maximise Youden's J = sensitivity + specificity − 1 = TPR − FPR;
* ``f1``: maximise F1 = 2·TP / (2·TP + FP + FN);
* a number in [0, 1]: that fixed threshold for every label.

The candidates of ``youden`` and ``f1`` are the bin edges ``k / B`` (k = 0 … B); at edge k the
bins k … B−1 are predicted positive, so the confusion counts of a candidate are exact sums of
histogram bins. Where several consecutive edges reach the maximum (a gap between occupied bins)
the middle one is taken, the threshold with the largest margin on both sides; among separate
runs of maximising edges, the lowest. A label whose validation data lack positives (or, for
``youden``, negatives) has no defined optimum: it falls back to 0.5 and is flagged.

    >>> pos = np.array([[0, 0, 1, 3]]); neg = np.array([[2, 2, 0, 0]])
    >>> choose_thresholds(pos, neg, parse_rule("youden"))[0]
    array([0.5])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from crypten_fl.common.errors import UserError

FALLBACK_THRESHOLD = 0.5
RULES = ("youden", "f1")


@dataclass(frozen=True)
class ThresholdRule:
    """``name`` is ``youden``, ``f1`` or ``fixed`` (then ``value`` is the threshold)."""

    name: str
    value: float | None = None

    def __str__(self) -> str:
        return f"fixed {self.value:g}" if self.name == "fixed" else self.name


def parse_rule(text: str) -> ThresholdRule:
    """``youden``, ``f1`` or a number in [0, 1]; anything else is a UserError naming --threshold."""
    name = str(text).strip().lower()
    if name in RULES:
        return ThresholdRule(name)
    try:
        value = float(name)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise UserError(f"--threshold {text!r}: expected youden, f1 or a number in [0, 1]")
    return ThresholdRule("fixed", value)


def edge_confusion(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, FP, TN, FN at every bin edge k = 0 … B of ``(..., B)`` histograms → ``(..., B+1)``."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    zero = np.zeros((*pos.shape[:-1], 1))
    tp = np.concatenate([np.flip(np.cumsum(np.flip(pos, -1), -1), -1), zero], axis=-1)
    fp = np.concatenate([np.flip(np.cumsum(np.flip(neg, -1), -1), -1), zero], axis=-1)
    return tp, fp, neg.sum(-1, keepdims=True) - fp, pos.sum(-1, keepdims=True) - tp


def _criterion(pos: np.ndarray, neg: np.ndarray, rule: str) -> np.ndarray | None:
    """The rule's value at every edge of one label, or None where it is undefined."""
    tp, fp, _, fn = edge_confusion(pos, neg)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or (rule == "youden" and n_neg == 0):
        return None
    if rule == "youden":
        return tp / n_pos - fp / n_neg
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1.0)


def middle_of_first_maximum(values: np.ndarray, tol: float = 1e-12) -> int:
    """Index in the middle of the first run of consecutive maximal values."""
    best = values >= values.max() - tol
    start = int(np.argmax(best))
    end = start
    while end + 1 < len(values) and best[end + 1]:
        end += 1
    return (start + end) // 2


def choose_thresholds(pos: np.ndarray, neg: np.ndarray, rule: ThresholdRule
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-label thresholds ``(L,)`` and fallback flags ``(L,)`` from ``(L, B)`` histograms."""
    pos = np.atleast_2d(np.asarray(pos, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(neg, dtype=np.float64))
    n_labels, bins = pos.shape
    if rule.name == "fixed":
        return np.full(n_labels, float(rule.value)), np.zeros(n_labels, dtype=bool)
    thresholds = np.full(n_labels, FALLBACK_THRESHOLD)
    fallback = np.ones(n_labels, dtype=bool)
    for label in range(n_labels):
        values = _criterion(pos[label], neg[label], rule.name)
        if values is not None:
            thresholds[label] = middle_of_first_maximum(values) / bins
            fallback[label] = False
    return thresholds, fallback
