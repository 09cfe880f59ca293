"""ROC of a membership-inference attack: AUROC, TPR at a fixed FPR, bootstrap intervals.

Everything works on **score counts**: ``pos[i]`` members and ``neg[i]`` non-members have the
``i``-th score level, levels in ascending order. Exact scores give one level per distinct score
(:func:`counts_from_scores`); a histogram on a fixed grid is the same thing with empty levels, so
a hospital's exact scores and the securely summed histograms of all hospitals go through the same
code. The attack says "member" when the score is ≥ a threshold; the ROC has one vertex per
threshold (from the highest level down), starting at (0, 0) and ending at (1, 1).

* **AUROC**: trapezoid area under the vertices = P(member score > non-member score) + ½ P(tie).
* **TPR at FPR α**: the largest TPR the ROC reaches at FPR ≤ α, interpolating linearly between
  consecutive vertices (a randomised threshold realises every point of the segment). With fewer
  than 1/α non-members no deterministic threshold has FPR in (0, α]: the value then rests on
  the interpolation towards the first false positive and is flagged ``resolved = False``.
* **Bootstrap**: members and non-members are resampled separately (their counts stay fixed);
  resampling individuals is a multinomial draw over the levels, so a histogram can be
  bootstrapped without the individual scores. Percentile intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: FPRs at which the TPR is reported (0.1 % and 1 %), as in Carlini et al. (S&P 2022)
REPORTED_FPRS = (0.001, 0.01)


@dataclass(frozen=True)
class Roc:
    """ROC vertices ``fpr[k], tpr[k]`` (k = 0 … levels), non-decreasing, from (0,0) to (1,1)."""

    fpr: np.ndarray
    tpr: np.ndarray
    n_pos: int
    n_neg: int


def counts_from_scores(members: np.ndarray, non_members: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Counts of members and non-members at each distinct score, scores ascending."""
    members = np.asarray(members, dtype=np.float64).ravel()
    non_members = np.asarray(non_members, dtype=np.float64).ravel()
    levels, inverse = np.unique(np.concatenate([members, non_members]), return_inverse=True)
    pos = np.bincount(inverse[: members.size], minlength=levels.size)
    neg = np.bincount(inverse[members.size :], minlength=levels.size)
    return pos.astype(np.int64), neg.astype(np.int64)


def check_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts as float arrays; ValueError unless both are non-empty and of the same shape."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    if pos.shape != neg.shape or pos.shape[-1] == 0:
        raise ValueError(f"member counts {pos.shape} and non-member counts {neg.shape} differ")
    if np.any(pos.sum(axis=-1) <= 0) or np.any(neg.sum(axis=-1) <= 0):
        raise ValueError("an attack ROC needs at least one member and one non-member")
    return pos, neg


def roc_vertices(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of shape ``(..., levels + 1)`` for counts of shape ``(..., levels)``."""
    pos, neg = check_counts(pos, neg)
    zero = np.zeros((*pos.shape[:-1], 1))
    tp = np.concatenate([zero, np.cumsum(pos[..., ::-1], axis=-1)], axis=-1)
    fp = np.concatenate([zero, np.cumsum(neg[..., ::-1], axis=-1)], axis=-1)
    return fp / fp[..., -1:], tp / tp[..., -1:]


def roc(pos: np.ndarray, neg: np.ndarray) -> Roc:
    """The ROC of counts ``pos``, ``neg`` (1-D, scores ascending)."""
    fpr, tpr = roc_vertices(pos, neg)
    return Roc(fpr, tpr, int(np.sum(pos)), int(np.sum(neg)))


def auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray | float:
    """Area under the ROC (ties count ½); vectorised over leading axes."""
    fpr, tpr = roc_vertices(pos, neg)
    area = np.sum(np.diff(fpr, axis=-1) * (tpr[..., 1:] + tpr[..., :-1]) / 2.0, axis=-1)
    return float(area) if np.ndim(area) == 0 else area


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, alpha: float) -> np.ndarray | float:
    """Largest TPR at FPR ≤ ``alpha`` on the piecewise-linear ROC; vectorised over rows."""
    fpr, tpr = np.atleast_2d(fpr), np.atleast_2d(tpr)
    last = np.sum(fpr <= alpha, axis=-1) - 1  # the last vertex at or below alpha (≥ 0)
    nxt = np.minimum(last + 1, fpr.shape[-1] - 1)
    f0, t0 = np.take_along_axis(fpr, last[:, None], -1)[:, 0], np.take_along_axis(
        tpr, last[:, None], -1)[:, 0]
    f1, t1 = np.take_along_axis(fpr, nxt[:, None], -1)[:, 0], np.take_along_axis(
        tpr, nxt[:, None], -1)[:, 0]
    step = np.where(f1 > f0, (alpha - f0) / np.where(f1 > f0, f1 - f0, 1.0), 0.0)
    value = t0 + np.clip(step, 0.0, 1.0) * (t1 - t0)
    return float(value[0]) if value.size == 1 else value


def resolved(n_neg: int, alpha: float) -> bool:
    """Whether ``n_neg`` non-members can resolve FPR ``alpha`` (at least one false positive)."""
    return n_neg * alpha >= 1.0


def bootstrap_counts(pos: np.ndarray, neg: np.ndarray, replicates: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``replicates`` resamples of the counts ``(replicates, levels)``, members and non-members
    each resampled with replacement at their own size (empty levels are dropped first)."""
    pos, neg = np.asarray(pos, dtype=np.int64), np.asarray(neg, dtype=np.int64)
    keep = (pos + neg) > 0
    pos, neg = pos[keep], neg[keep]
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    return (rng.multinomial(n_pos, pos / n_pos, size=replicates),
            rng.multinomial(n_neg, neg / n_neg, size=replicates))


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> list[float]:
    """Percentile bootstrap interval ``[lo, hi]``."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(samples, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def roc_on_grid(curve: Roc, grid: Sequence[float]) -> list[float]:
    """TPR at each FPR of ``grid`` (for plotting a downsampled ROC)."""
    return [float(tpr_at_fpr(curve.fpr, curve.tpr, a)) for a in grid]


def fpr_grid(points: int = 120, smallest: float = 1e-4) -> list[float]:
    """Log-spaced FPRs from ``smallest`` to 1, plus 0 (the ROC plotted on log-log axes)."""
    return [0.0, *np.geomspace(smallest, 1.0, points).tolist()]
