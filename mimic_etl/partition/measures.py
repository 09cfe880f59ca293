"""Label prevalence and the non-IID measure of a partition.

``mean_js_divergence`` (docs/data-contracts.md): the mean over hospitals of the Jensen–Shannon
divergence between the hospital's label-prevalence vector and the pooled one, each label treated as
a Bernoulli variable and averaged over labels; base-2 logarithms, so 0 ≤ JS ≤ 1.
"""

from __future__ import annotations

import numpy as np


def prevalence(labels: np.ndarray) -> np.ndarray:
    """(L,) share of positive rows per label; NaN for an empty set of rows."""
    if len(labels) == 0:
        return np.full(labels.shape[1], np.nan)
    return labels.mean(axis=0, dtype=np.float64)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) in bits of a Bernoulli(p), with 0·log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.where((p <= 0) | (p >= 1), 0.0, terms)


def bernoulli_js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (bits) between Bernoulli(p) and Bernoulli(q), elementwise."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    js = binary_entropy((p + q) / 2) - (binary_entropy(p) + binary_entropy(q)) / 2
    return np.clip(js, 0.0, 1.0)


def hospital_js(prevalences: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """(K,) per-hospital JS divergence from the pooled prevalence, averaged over labels.

    Args:
        prevalences: (K, L) label prevalence of each hospital.
        pooled: (L,) label prevalence over all hospitals' stays.
    """
    return bernoulli_js(prevalences, pooled[None, :]).mean(axis=1)


def mean_js_divergence(prevalences: np.ndarray, pooled: np.ndarray) -> float:
    """The partition's non-IID measure: the mean of `hospital_js` over hospitals."""
    return float(hospital_js(prevalences, pooled).mean())


def partition_js(labels: np.ndarray, hospital_of_stay: np.ndarray, hospitals: int) -> float:
    """`mean_js_divergence` of a stay→hospital assignment, pooled over all the given stays."""
    per_hospital = np.stack([prevalence(labels[hospital_of_stay == k]) for k in range(hospitals)])
    return mean_js_divergence(per_hospital, prevalence(labels))
