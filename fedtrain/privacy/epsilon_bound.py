"""Empirical lower bound on ε implied by a membership-inference attack's TPR/FPR pairs.

If training is (ε, δ)-DP with respect to one record, every test that tells "member" from
"non-member" satisfies TPR ≤ e^ε·FPR + δ and TNR ≤ e^ε·FNR + δ (Kairouz et al. 2015). So an
attack that reaches (FPR, TPR) proves

    ε ≥ max( log((TPR − δ) / FPR),  log((1 − FPR − δ) / (1 − TPR)) ).

With finitely many members and non-members, TPR and FPR are estimates: following Jagielski et
al. (NeurIPS 2020) and Nasr et al. (S&P 2021) the bound uses one-sided Clopper–Pearson bounds,
the lower bound of TPR and the upper bound of FPR, each at level 1 − (1 − c)/2 so that both hold
together with confidence c (union bound; c = 95 % by default). The reported ε_lb is the maximum
over the attack's thresholds (ROC vertices), floored at 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crypten_fl.fedtrain.privacy.attack_metrics import check_counts
from scipy.stats import beta


def clopper_pearson_lower(k: np.ndarray, n: int, level: float) -> np.ndarray:
    """One-sided lower bound of a binomial proportion (k successes of n) at ``level``."""
    k = np.asarray(k, dtype=np.float64)
    safe = np.maximum(k, 1.0)
    return np.where(k > 0, beta.ppf(1.0 - level, safe, n - k + 1.0), 0.0)


def clopper_pearson_upper(k: np.ndarray, n: int, level: float) -> np.ndarray:
    """One-sided upper bound of a binomial proportion (k successes of n) at ``level``."""
    k = np.asarray(k, dtype=np.float64)
    safe = np.minimum(k, n - 1.0)
    return np.where(k < n, beta.ppf(level, safe + 1.0, n - safe), 1.0)


@dataclass(frozen=True)
class EpsilonBound:
    """ε_lb and the operating point (empirical FPR, TPR and their bounds) that gives it."""

    epsilon: float
    fpr: float
    tpr: float
    fpr_upper: float
    tpr_lower: float
    delta: float
    confidence: float

    def to_json(self) -> dict[str, float]:
        return {"value": self.epsilon, "fpr": self.fpr, "tpr": self.tpr,
                "fpr_upper": self.fpr_upper, "tpr_lower": self.tpr_lower, "delta": self.delta,
                "confidence": self.confidence}


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((num > 0) & (den > 0), np.log(np.maximum(num, 1e-300) / den), -np.inf)


def epsilon_lower_bound(pos: np.ndarray, neg: np.ndarray, delta: float,
                        confidence: float = 0.95) -> EpsilonBound:
    """ε_lb from member/non-member counts per score level (ascending, see attack_metrics)."""
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    pos, neg = check_counts(pos, neg)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    tp = np.concatenate([[0.0], np.cumsum(pos[::-1])])
    fp = np.concatenate([[0.0], np.cumsum(neg[::-1])])
    level = 1.0 - (1.0 - confidence) / 2.0
    tpr_lo = clopper_pearson_lower(tp, n_pos, level)
    fpr_hi = clopper_pearson_upper(fp, n_neg, level)
    candidates = np.maximum(_log_ratio(tpr_lo - delta, fpr_hi),
                            _log_ratio(1.0 - fpr_hi - delta, 1.0 - tpr_lo))
    best = int(np.argmax(candidates))
    return EpsilonBound(epsilon=float(max(candidates[best], 0.0)), fpr=float(fp[best] / n_neg),
                        tpr=float(tp[best] / n_pos), fpr_upper=float(fpr_hi[best]),
                        tpr_lower=float(tpr_lo[best]), delta=float(delta),
                        confidence=confidence)
