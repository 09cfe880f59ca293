"""Metrics: exact values vs sklearn, and the histogram forms used by the secure evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from crypten_fl.fedtrain.metrics.classification import (
    auroc_from_histograms,
    binary_metrics,
    confusion_counts,
    confusion_from_histograms,
    histogram_counts,
    multilabel_metrics,
    roc_auc,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


def _random_problem(seed: int, n: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    logits = signal * (y - 0.5) + rng.normal(size=n)
    return y, 1.0 / (1.0 + np.exp(-logits))


def test_hand_computed_example() -> None:
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.6, 0.6, 0.2, 0.4])
    m = binary_metrics(y, p)
    # pairs (pos, neg): 0.9>0.6, 0.9>0.2, 0.6=0.6 (1/2), 0.6>0.2, 0.4<0.6, 0.4>0.2 → 4.5 / 6
    assert m["auroc"] == pytest.approx(4.5 / 6)
    assert confusion_counts(y, p) == {"tp": 2, "fp": 1, "tn": 1, "fn": 1}
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["mse"] == pytest.approx((0.01 + 0.36 + 0.16 + 0.04 + 0.36) / 5)
    assert (m["n"], m["positives"]) == (5, 3)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 300),
    levels=st.integers(2, 50),
    threshold=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_exact_metrics_equal_sklearn(seed: int, n: int, levels: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    p = rng.integers(0, levels + 1, size=n) / levels  # few levels: many ties
    m = binary_metrics(y, p, threshold)
    pred = (p >= threshold).astype(int)
    if y.min() == y.max():
        assert math.isnan(m["auroc"])
    else:
        assert m["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, pred, zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred, zero_division=0))
    assert m["mse"] == pytest.approx(brier_score_loss(y, p))


def test_single_class_label_has_nan_auroc_and_is_skipped_in_macro() -> None:
    y = np.array([[1, 0], [1, 1], [1, 0], [1, 1]])
    p = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.4], [0.6, 0.6]])
    out = multilabel_metrics(y, p, label_names=["all_pos", "mixed"])
    assert math.isnan(out["per_label"]["all_pos"]["auroc"])
    assert out["per_label"]["mixed"]["auroc"] == pytest.approx(1.0)
    assert out["macro"]["auroc"] == pytest.approx(1.0)  # NaN label skipped
    assert out["macro"]["labels_with_auroc"] == 1
    expected_acc = (out["per_label"]["all_pos"]["accuracy"] + 1.0) / 2
    assert out["macro"]["accuracy"] == pytest.approx(expected_acc)
    assert math.isnan(roc_auc(np.zeros(3), np.arange(3)))


def test_multilabel_shape_checks() -> None:
    with pytest.raises(ValueError, match="must both be"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="label names"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 2)), label_names=["a"])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(500, 5000),
    signal=st.floats(0.0, 3.0),
)
def test_histogram_auroc_within_0_002_of_sklearn(seed: int, n: int, signal: float) -> None:
    y, p = _random_problem(seed, n, signal)
    pos, neg = histogram_counts(p, y, bins=1000)
    assert pos.sum() + neg.sum() == n and pos.sum() == y.sum()
    assert abs(auroc_from_histograms(pos, neg) - roc_auc_score(y, p)) <= 0.002


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    signal=st.floats(0.0, 3.0),
    bins=st.sampled_from([5, 100, 1000]),
)
def test_histogram_auroc_error_is_bounded_by_half_the_same_bin_pairs(
    seed: int, n: int, signal: float, bins: int
) -> None:
    """Any data: only pairs sharing a bin can be mis-scored, each by 1/2."""
    y, p = _random_problem(seed, n, signal)
    pos, neg = histogram_counts(p, y, bins=bins)
    same_bin_share = (pos * neg).sum() / (pos.sum() * neg.sum())
    error = abs(auroc_from_histograms(pos, neg) - roc_auc_score(y, p))
    assert error <= 0.5 * same_bin_share + 1e-12


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 500), bins=st.sampled_from([10, 1000]))
def test_histogram_auroc_is_exact_on_bin_quantised_scores(seed: int, n: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    y[0], y[-1] = 0, 1
    p = (rng.integers(0, bins, size=n) + 0.5) / bins  # same bin ⇔ same score
    pos, neg = histogram_counts(p, y, bins=bins)
    assert auroc_from_histograms(pos, neg) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), k=st.integers(0, 1000))
def test_confusion_from_histograms_is_exact_at_bin_edges(seed: int, n: int, k: int) -> None:
    y, p = _random_problem(seed, max(n, 2), 1.0)
    p[: len(p) // 4] = np.round(p[: len(p) // 4], 3)  # put scores exactly on bin edges too
    threshold = k / 1000
    pos, neg = histogram_counts(p, y, bins=1000)
    assert confusion_from_histograms(pos, neg, threshold) == confusion_counts(y, p, threshold)


def test_histograms_sum_across_hospitals() -> None:
    y, p = _random_problem(1, 900, 1.5)
    parts = [histogram_counts(p[i::3], y[i::3]) for i in range(3)]
    pos = sum(a for a, _ in parts)
    neg = sum(b for _, b in parts)
    whole_pos, whole_neg = histogram_counts(p, y)
    np.testing.assert_array_equal(pos, whole_pos)
    np.testing.assert_array_equal(neg, whole_neg)


def test_multilabel_histograms_and_edges() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[1.0, 0.0], [0.0, 0.25], [0.5, 0.999], [0.49, 0.5]])
    pos, neg = histogram_counts(p, y, bins=4)
    assert pos.shape == neg.shape == (2, 4)
    np.testing.assert_array_equal(pos[0], [0, 0, 1, 1])  # p = 1.0 goes to the last bin
    np.testing.assert_array_equal(neg[0], [1, 1, 0, 0])
    np.testing.assert_allclose(auroc_from_histograms(pos, neg), [1.0, 0.75])
    conf = confusion_from_histograms(pos, neg, 0.5)
    np.testing.assert_array_equal(conf["tp"], [2, 1])
    np.testing.assert_array_equal(conf["fp"], [0, 1])
    assert math.isnan(auroc_from_histograms(np.zeros(4), np.ones(4)))
    with pytest.raises(ValueError, match="NaN"):
        histogram_counts(np.array([math.nan]), np.array([1]))
