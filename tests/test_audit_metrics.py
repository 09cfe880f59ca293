"""Attack ROC maths: exact AUROC / TPR@FPR on hand-built scores, ε lower bound, bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from crypten_fl.fedtrain.metrics.classification import roc_auc
from crypten_fl.fedtrain.privacy.attack_metrics import (
    auroc,
    bootstrap_counts,
    counts_from_scores,
    percentile_interval,
    resolved,
    roc,
    tpr_at_fpr,
)
from crypten_fl.fedtrain.privacy.audit_summary import summarise
from crypten_fl.fedtrain.privacy.epsilon_bound import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    epsilon_lower_bound,
)
from helpers.audit import counts
from hypothesis import given, settings
from hypothesis import strategies as st

scores = st.lists(st.integers(0, 20), min_size=1, max_size=40)


def test_counts_from_scores_orders_distinct_scores() -> None:
    pos, neg = counts_from_scores(np.array([2.0, 1.0, 2.0]), np.array([0.0, 2.0, 3.0]))
    assert pos.tolist() == [0, 1, 2, 0] and neg.tolist() == [1, 0, 1, 1]


def test_roc_auroc_and_tpr_at_fpr_on_hand_built_scores() -> None:
    # members 0.9 0.8 0.7 0.3, non-members 0.85 0.4 0.2 0.1: 12 of 16 pairs ranked right
    pos, neg = counts_from_scores(np.array([0.9, 0.8, 0.7, 0.3]),
                                  np.array([0.85, 0.4, 0.2, 0.1]))
    curve = roc(pos, neg)
    assert (curve.fpr * 4).tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 4]
    assert (curve.tpr * 4).tolist() == [0, 1, 1, 2, 3, 3, 4, 4, 4]
    assert auroc(pos, neg) == 0.75
    assert tpr_at_fpr(curve.fpr, curve.tpr, 0.25) == 0.75
    assert tpr_at_fpr(curve.fpr, curve.tpr, 0.1) == 0.25  # flat segment (0, ¼) → (¼, ¼)
    assert tpr_at_fpr(curve.fpr, curve.tpr, 0.5) == 1.0  # top of the vertical step at ½
    assert tpr_at_fpr(curve.fpr, curve.tpr, 0.0) == 0.25


def test_ties_count_half_and_interpolate_along_the_diagonal() -> None:
    # members 1 2 2, non-members 0 2 3 (one tie level with a member pair and a non-member)
    pos, neg = counts(4, {1: 1, 2: 2}, {0: 1, 2: 1, 3: 1})
    assert auroc(pos, neg) == pytest.approx(4 / 9, abs=1e-15)
    curve = roc(pos, neg)
    assert curve.fpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1])
    assert curve.tpr.tolist() == pytest.approx([0, 0, 2 / 3, 1, 1])
    # halfway along (⅓, 0) → (⅔, ⅔): a randomised threshold inside the tie
    assert tpr_at_fpr(curve.fpr, curve.tpr, 0.5) == pytest.approx(1 / 3)


def test_tpr_at_fpr_is_vectorised_over_bootstrap_rows() -> None:
    fpr = np.array([[0, 0.5, 1.0], [0, 0.2, 1.0]])
    tpr = np.array([[0, 1.0, 1.0], [0, 0.4, 1.0]])
    assert tpr_at_fpr(fpr, tpr, 0.1).tolist() == pytest.approx([0.2, 0.2])


def test_resolution_flag() -> None:
    assert resolved(1000, 0.001) and not resolved(999, 0.001) and resolved(100, 0.01)


def test_clopper_pearson_closed_forms() -> None:
    n, level = 100, 0.975
    q = (1 - level) ** (1 / n)
    assert clopper_pearson_lower(np.array([n]), n, level)[0] == pytest.approx(q)
    assert clopper_pearson_upper(np.array([0]), n, level)[0] == pytest.approx(1 - q)
    assert clopper_pearson_lower(np.array([0]), n, level)[0] == 0.0
    assert clopper_pearson_upper(np.array([n]), n, level)[0] == 1.0


@pytest.mark.parametrize("delta", [0.0, 1e-3])
def test_epsilon_lower_bound_of_a_perfect_attack_by_hand(delta: float) -> None:
    # 100 members all above 100 non-members; at 95 % joint confidence each bound is one-sided
    # 97.5 %: TPR ≥ q and FPR ≤ 1 − q with q = 0.025^(1/100), so ε ≥ log((q − δ) / (1 − q))
    pos, neg = counts(2, {1: 100}, {0: 100})
    bound = epsilon_lower_bound(pos, neg, delta=delta)
    q = 0.025 ** (1 / 100)
    assert bound.epsilon == pytest.approx(math.log((q - delta) / (1 - q)), rel=1e-9)
    assert (bound.tpr, bound.fpr) == (1.0, 0.0)
    assert bound.tpr_lower == pytest.approx(q) and bound.fpr_upper == pytest.approx(1 - q)


def test_epsilon_lower_bound_is_zero_without_separation() -> None:
    pos, neg = counts(3, {0: 30, 1: 40, 2: 30}, {0: 30, 1: 40, 2: 30})
    assert epsilon_lower_bound(pos, neg, delta=1e-5).epsilon == 0.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(1, 50), st.integers(1, 50), st.integers(0, 5))
def test_perfectly_separating_scores(n_pos: int, n_neg: int, gap: int) -> None:
    pos, neg = counts(gap + 2, {gap + 1: n_pos}, {0: n_neg})
    curve = roc(pos, neg)
    assert auroc(pos, neg) == 1.0
    assert tpr_at_fpr(curve.fpr, curve.tpr, 0.001) == 1.0
    assert auroc(neg, pos) == 0.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(scores, scores)
def test_auroc_is_the_rank_statistic_and_swapping_the_groups_mirrors_it(
        members: list[int], non_members: list[int]) -> None:
    pos, neg = counts_from_scores(np.array(members), np.array(non_members))
    labels = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    value = auroc(pos, neg)
    assert value == pytest.approx(roc_auc(labels, np.r_[members, non_members]), abs=1e-12)
    # exchangeable groups: AUROC(a, b) + AUROC(b, a) = 1, hence 0.5 in expectation
    assert value + auroc(neg, pos) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 30), min_size=3, max_size=12),
       st.lists(st.integers(0, 30), min_size=3, max_size=12), st.integers(0, 10**6),
       st.floats(0.0, 1e-3))
def test_epsilon_bound_is_non_negative_and_grows_when_a_member_scores_higher(
        pos_list: list[int], neg_list: list[int], pick: int, delta: float) -> None:
    levels = min(len(pos_list), len(neg_list))
    pos, neg = np.array(pos_list[:levels]), np.array(neg_list[:levels])
    if pos.sum() == 0 or neg.sum() == 0:
        pos[0] += 1
        neg[0] += 1
    before = epsilon_lower_bound(pos, neg, delta).epsilon
    assert before >= 0.0
    donors = np.flatnonzero(pos[:-1])
    if donors.size:  # move one member to the top level: TPR rises at every threshold
        moved = pos.copy()
        moved[donors[pick % donors.size]] -= 1
        moved[-1] += 1
        assert epsilon_lower_bound(moved, neg, delta).epsilon >= before - 1e-12


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 15), min_size=5, max_size=40),
       st.lists(st.integers(0, 15), min_size=5, max_size=40), st.integers(0, 1000))
def test_bootstrap_interval_contains_the_auroc(members: list[int], non_members: list[int],
                                               seed: int) -> None:
    pos, neg = counts_from_scores(np.array(members), np.array(non_members))
    report = summarise(pos, neg, delta=0.0, replicates=400, rng=np.random.default_rng(seed))
    lo, hi = report["auroc"]["ci"]
    assert lo - 1e-12 <= report["auroc"]["value"] <= hi + 1e-12


def test_bootstrap_keeps_group_sizes_and_is_seeded() -> None:
    pos, neg = counts(5, {1: 3, 4: 7}, {0: 6, 2: 4})
    a = bootstrap_counts(pos, neg, 50, np.random.default_rng(1))
    b = bootstrap_counts(pos, neg, 50, np.random.default_rng(1))
    assert (a[0].sum(axis=1) == 10).all() and (a[1].sum(axis=1) == 10).all()
    assert a[0].shape == (50, 4)  # the empty level 3 is dropped
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert percentile_interval(np.arange(101.0)) == pytest.approx([2.5, 97.5])


def test_summary_fields() -> None:
    pos, neg = counts(3, {2: 5, 1: 5}, {0: 8, 1: 2})
    report = summarise(pos, neg, delta=1e-3, replicates=0, rng=np.random.default_rng(0))
    assert report["members"] == 10 and report["non_members"] == 10
    assert report["auroc"]["ci"] is None
    assert set(report["tpr_at_fpr"]) == {"0.001", "0.01"}
    assert report["tpr_at_fpr"]["0.01"]["resolved"] is False
    assert report["epsilon_lower_bound"]["delta"] == 1e-3
    assert report["roc"]["fpr"][0] == 0.0 and report["roc"]["tpr"][-1] == 1.0
