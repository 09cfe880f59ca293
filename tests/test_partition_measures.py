"""The non-IID measure: Bernoulli Jensen–Shannon divergence, hand-computed values and bounds."""

from __future__ import annotations

import numpy as np
from crypten_fl.mimic_etl.partition.measures import (
    bernoulli_js,
    binary_entropy,
    hospital_js,
    mean_js_divergence,
    partition_js,
    prevalence,
)
from hypothesis import given, settings
from hypothesis import strategies as st

H_075 = 0.75 * np.log2(1 / 0.75) + 0.25 * np.log2(4)  # 0.8112781244591328


def test_binary_entropy_known_values():
    np.testing.assert_allclose(binary_entropy(np.array([0, 0.5, 1, 0.25])), [0, 1, 0, H_075])


def test_bernoulli_js_hand_computed():
    # JS(1, 0): M = Bernoulli(0.5): H(M) - (0 + 0)/2 = 1 bit
    assert bernoulli_js(1.0, 0.0) == 1.0
    # JS(0.25, 0.75): H(0.5) - (H(0.25) + H(0.75))/2 = 1 - 0.811278
    np.testing.assert_allclose(bernoulli_js(0.25, 0.75), 1 - H_075)
    # JS(1, 0.5): M = 0.75: H(0.75) - (0 + 1)/2
    np.testing.assert_allclose(bernoulli_js(1.0, 0.5), H_075 - 0.5)


def test_mean_js_divergence_hand_computed():
    prevalences = np.array([[1.0, 0.5], [0.0, 0.5]])
    pooled = np.array([0.5, 0.5])
    # per hospital: label 0 gives H(0.75) - 0.5, label 1 gives 0; mean over 2 labels
    expected = (H_075 - 0.5) / 2
    np.testing.assert_allclose(hospital_js(prevalences, pooled), [expected, expected])
    np.testing.assert_allclose(mean_js_divergence(prevalences, pooled), expected)


def test_partition_js_from_stay_labels():
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], np.int8)
    # hospital 0 = stays 0,1 (prev 1, .5); hospital 1 = stays 2,3 (prev 0, .5); pooled (.5, .5)
    np.testing.assert_allclose(partition_js(labels, np.array([0, 0, 1, 1]), 2), (H_075 - 0.5) / 2)
    # identical hospitals: no divergence
    assert partition_js(labels, np.array([0, 1, 1, 0]), 2) == 0.0


def test_prevalence_of_empty_set_is_nan():
    assert np.isnan(prevalence(np.zeros((0, 3), np.int8))).all()


probability = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(p=probability, q=probability)
def test_js_is_a_bounded_symmetric_divergence(p, q):
    js = float(bernoulli_js(p, q))
    assert 0.0 <= js <= 1.0
    assert abs(js - float(bernoulli_js(q, p))) < 1e-12
    assert float(bernoulli_js(p, p)) < 1e-12
    if abs(p - q) > 0.05:
        assert js > 0.0
