"""Additive evaluation summaries: sums over hospitals equal the pooled summary, metrics from the
sums equal the exact metrics at the same thresholds, and the binned AUROC is within 0.002."""

from __future__ import annotations

import math

import numpy as np
import pytest
from crypten_fl.fedtrain.evaluate.summary import (
    exact_metrics,
    local_summary,
    metrics_from_summary,
    split_summary,
    summary_length,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

NAMES = ["a", "b", "c"]
CONFUSION_METRICS = ("accuracy", "precision", "recall", "f1", "specificity")


def _hospitals(seed: int, sizes: list[int], n_labels: int = 3
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hospital (probs, labels) with real signal and a spread like a trained model's."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        labels = (rng.random((n, n_labels)) < 0.3).astype(float)
        logits = rng.normal(0, 1.2, (n, n_labels)) + 1.5 * labels - 0.8
        out.append((1 / (1 + np.exp(-logits)), labels))
    return out


def test_summary_by_hand() -> None:
    probs = np.array([[0.1], [0.45], [0.5], [0.9]])
    labels = np.array([[0], [1], [0], [1]])
    v = local_summary(probs, labels, np.array([0.5]), bins=4)
    assert v.size == summary_length(1, 4) == 13
    pos, neg, sse, counts = split_summary(v, 1, 4)
    assert pos.tolist() == [[0, 1, 0, 1]] and neg.tolist() == [[1, 0, 1, 0]]
    assert sse[0] == pytest.approx(0.01 + 0.3025 + 0.25 + 0.01)
    # 0.5 ≥ 0.5 is predicted positive
    assert {k: int(c[0]) for k, c in counts.items()} == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    m = metrics_from_summary(v, ["x"], 4)["labels"]["x"]
    # positives in bins 1 and 3, negatives in 0 and 2: wins 1·(1) + 1·(2) of 4 pairs
    assert m["auroc"] == 0.75 and m["accuracy"] == 0.5 and m["n"] == 4 and m["positives"] == 2


def test_sum_of_hospital_summaries_is_the_pooled_summary() -> None:
    parts = _hospitals(1, [40, 0, 75])
    t = np.array([0.3, 0.5, 0.62])
    total = sum(local_summary(p, y, t, 50) for p, y in parts)
    pooled = local_summary(np.concatenate([p for p, _ in parts]),
                           np.concatenate([y for _, y in parts]), t, 50)
    np.testing.assert_allclose(total, pooled, rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 60), min_size=1, max_size=4),
       st.lists(st.sampled_from([0.0, 0.25, 0.31, 0.5, 0.77, 1.0]), min_size=3, max_size=3))
def test_metrics_from_sums_equal_exact_metrics_at_the_same_thresholds(seed, sizes, t) -> None:
    parts = _hospitals(seed, sizes)
    thresholds = np.array(t)
    total = sum(local_summary(p, y, thresholds, 100) for p, y in parts)
    probs = np.concatenate([p for p, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    secure = metrics_from_summary(total, NAMES, 100)
    exact = exact_metrics(probs, labels, NAMES, thresholds)
    for name in NAMES:
        s, e = secure["labels"][name], exact["labels"][name]
        assert {k: s[k] for k in (*CONFUSION_METRICS, "n", "positives")} == \
            {k: e[k] for k in (*CONFUSION_METRICS, "n", "positives")}
        assert s["mse"] == pytest.approx(e["mse"], nan_ok=True)
        assert math.isnan(s["auroc"]) == math.isnan(e["auroc"])
    for k in CONFUSION_METRICS:
        assert secure["micro"][k] == exact["micro"][k]
    assert secure["micro"]["n"] == exact["micro"]["n"] == len(labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_auroc_within_0_002_of_sklearn_with_enough_rows(seed) -> None:
    parts = _hospitals(seed, [1500, 800, 2200])
    total = sum(local_summary(p, y, np.full(3, 0.5), 1000) for p, y in parts)
    secure = metrics_from_summary(total, NAMES, 1000)
    probs = np.concatenate([p for p, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    for j, name in enumerate(NAMES):
        assert abs(secure["labels"][name]["auroc"] - roc_auc_score(labels[:, j], probs[:, j])) \
            < 0.002
    micro = roc_auc_score(labels.ravel(), probs.ravel())
    assert abs(secure["micro"]["auroc"] - micro) < 0.002


def test_micro_average_pools_every_stay_label_pair() -> None:
    probs = np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.4]])
    labels = np.array([[1, 0], [0, 1], [0, 1]])
    m = exact_metrics(probs, labels, ["x", "y"], np.array([0.5, 0.5]))["micro"]
    # x: TP 1, FP 1, TN 1; y: TP 1, FN 1, TN 1 → TP 2, FP 1, FN 1, TN 2
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["n"] == 3 and m["positives"] == 3


def test_empty_groups_and_single_class_labels_give_nan_auroc() -> None:
    empty = metrics_from_summary(local_summary(np.zeros((0, 3)), np.zeros((0, 3)),
                                               np.full(3, 0.5), 10), NAMES, 10)
    assert empty["micro"]["n"] == 0
    assert all(math.isnan(m["auroc"]) and math.isnan(m["mse"]) for m in empty["labels"].values())
    probs = np.array([[0.2, 0.7, 0.1], [0.8, 0.4, 0.3]])
    labels = np.array([[0, 1, 0], [1, 1, 0]])  # b: no negatives, c: no positives
    m = metrics_from_summary(local_summary(probs, labels, np.full(3, 0.5), 10), NAMES, 10)
    assert m["labels"]["a"]["auroc"] == 1.0
    assert math.isnan(m["labels"]["b"]["auroc"]) and math.isnan(m["labels"]["c"]["auroc"])
    assert m["macro"]["auroc"] == 1.0 and m["macro"]["labels_with_auroc"] == 1
