"""Threshold rules on validation histograms: hand-computed cases and brute-force properties."""

from __future__ import annotations

import numpy as np
import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.evaluate.thresholds import (
    ThresholdRule,
    choose_thresholds,
    edge_confusion,
    middle_of_first_maximum,
    parse_rule,
)
from crypten_fl.fedtrain.metrics.classification import confusion_counts, confusion_from_histograms
from hypothesis import given, settings
from hypothesis import strategies as st

# B = 4, P = 8, N = 4 — by hand, at edges k = 0..4:
#   TP = 8 7 5 4 0, FP = 4 2 1 0 0
#   Youden J = TP/8 − FP/4 = 0, .375, .375, .5, 0        → k = 3, t = 0.75
#   F1 = 2TP/(2TP + FP + FN) = .8, 14/17, 10/14, 8/12, 0  → k = 1, t = 0.25
POS = np.array([[1, 2, 1, 4]])
NEG = np.array([[2, 1, 1, 0]])


def test_youden_and_f1_on_a_hand_made_histogram() -> None:
    assert choose_thresholds(POS, NEG, parse_rule("youden"))[0].tolist() == [0.75]
    assert choose_thresholds(POS, NEG, parse_rule("f1"))[0].tolist() == [0.25]


def test_a_gap_between_classes_gives_the_middle_edge() -> None:
    pos = np.array([[0, 0, 0, 0, 0, 0, 0, 3, 3, 4]])  # positives in bins 7..9
    neg = np.array([[2, 3, 5, 0, 0, 0, 0, 0, 0, 0]])  # negatives in bins 0..2
    # every edge 3..7 separates perfectly (J = F1 = 1): the middle one, 5/10
    for rule in ("youden", "f1"):
        thresholds, fallback = choose_thresholds(pos, neg, parse_rule(rule))
        assert thresholds.tolist() == [0.5] and fallback.tolist() == [False]


@pytest.mark.parametrize("values, expected", [
    ([0, 1, 1, 1, 0.5, 1, 1], 2),  # first run 1..3
    ([3, 1, 3], 0),
    ([0, 1, 1, 0], 1),
    ([5], 0),
])
def test_middle_of_first_maximum(values, expected) -> None:
    assert middle_of_first_maximum(np.array(values, dtype=float)) == expected


def test_undefined_optimum_falls_back_to_one_half_and_is_flagged() -> None:
    no_pos = (np.array([[0, 0, 0, 0]]), np.array([[1, 2, 0, 1]]))
    no_neg = (np.array([[0, 0, 3, 1]]), np.array([[0, 0, 0, 0]]))
    for rule in ("youden", "f1"):
        t, flag = choose_thresholds(*no_pos, parse_rule(rule))
        assert t.tolist() == [0.5] and flag.tolist() == [True]
    t, flag = choose_thresholds(*no_neg, parse_rule("youden"))
    assert t.tolist() == [0.5] and flag.tolist() == [True]
    # F1 is defined without negatives: 1 at edges 0..2 (every positive kept), middle = 1/4
    t, flag = choose_thresholds(*no_neg, parse_rule("f1"))
    assert t.tolist() == [0.25] and flag.tolist() == [False]


def test_fixed_threshold_applies_to_every_label() -> None:
    t, flag = choose_thresholds(np.ones((3, 5)), np.ones((3, 5)), parse_rule("0.3"))
    assert t.tolist() == [0.3] * 3 and not flag.any()


@pytest.mark.parametrize("text, rule", [
    ("youden", ThresholdRule("youden")), (" F1 ", ThresholdRule("f1")),
    ("0.5", ThresholdRule("fixed", 0.5)), ("0", ThresholdRule("fixed", 0.0)),
    ("1", ThresholdRule("fixed", 1.0)),
])
def test_parse_rule(text, rule) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize("text", ["abc", "1.5", "-0.1", "nan", "inf", "", "youden2"])
def test_parse_rule_rejects_nonsense_naming_the_option(text) -> None:
    with pytest.raises(UserError, match=r"^--threshold .*expected youden, f1 or a number"):
        parse_rule(text)


histograms = st.integers(2, 12).flatmap(lambda b: st.tuples(
    st.lists(st.integers(0, 4), min_size=b, max_size=b),
    st.lists(st.integers(0, 4), min_size=b, max_size=b)))


def _rows(pos: list[int], neg: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Stays with scores at the bin centres, as many as the histograms count."""
    bins = len(pos)
    centres = (np.arange(bins) + 0.5) / bins
    scores = np.concatenate([np.repeat(centres, pos), np.repeat(centres, neg)])
    labels = np.concatenate([np.ones(sum(pos)), np.zeros(sum(neg))])
    return labels, scores


def _criterion(labels: np.ndarray, scores: np.ndarray, t: float, rule: str) -> float:
    c = confusion_counts(labels, scores, t)
    if rule == "youden":
        return c["tp"] / (c["tp"] + c["fn"]) - c["fp"] / (c["fp"] + c["tn"])
    return 2 * c["tp"] / max(2 * c["tp"] + c["fp"] + c["fn"], 1)


@settings(max_examples=150, deadline=None)
@given(histograms, st.sampled_from(["youden", "f1"]))
def test_chosen_threshold_is_optimal_over_every_bin_edge(hist, rule) -> None:
    pos, neg = hist
    labels, scores = _rows(pos, neg)
    t, flag = choose_thresholds(np.array([pos]), np.array([neg]), parse_rule(rule))
    if not sum(pos) or (rule == "youden" and not sum(neg)):
        assert flag[0] and t[0] == 0.5
        return
    bins = len(pos)
    best = max(_criterion(labels, scores, k / bins, rule) for k in range(bins + 1))
    assert _criterion(labels, scores, float(t[0]), rule) == pytest.approx(best, abs=1e-12)
    assert round(t[0] * bins, 9).is_integer()  # a bin edge


@settings(max_examples=60, deadline=None)
@given(histograms)
def test_edge_confusion_equals_the_confusion_at_each_edge(hist) -> None:
    pos, neg = np.array(hist[0]), np.array(hist[1])
    tp, fp, tn, fn = edge_confusion(pos, neg)
    for k in range(len(pos) + 1):
        expected = confusion_from_histograms(pos, neg, k / len(pos))
        assert (tp[k], fp[k], tn[k], fn[k]) == (expected["tp"], expected["fp"], expected["tn"],
                                                expected["fn"])
