"""Preprocessing: forward fill, pooled-moment normalisation, static encoding (exact values)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.data.preprocess import Normalizer, forward_fill, local_moments
from crypten_fl.fedtrain.data.static_encoding import (
    CATEGORICAL_VOCABULARIES,
    n_static_features,
    static_feature_names,
)
from hypothesis import given, settings
from hypothesis import strategies as st

NAN = math.nan


def _static(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "age": pl.Float64,
            "sex": pl.String,
            "race_group": pl.String,
            "admission_type": pl.String,
            "insurance": pl.String,
            "first_careunit": pl.String,
            "anchor_year_group": pl.String,
            "weight_kg": pl.Float64,
        },
    )


def _hospital_a() -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    # 2 stays, T = 3, F = 3 (feature 2 is never observed anywhere)
    values = np.array(
        [
            [[1, NAN, NAN], [NAN, NAN, NAN], [3, NAN, NAN]],
            [[NAN, 2, NAN], [5, NAN, NAN], [NAN, 4, NAN]],
        ],
        dtype=np.float32,
    )
    static = _static(
        [
            {
                "age": 60.0,
                "sex": "M",
                "race_group": "white",
                "admission_type": "EW EMER.",
                "insurance": "Medicare",
                "first_careunit": "Medical Intensive Care Unit (MICU)",
                "anchor_year_group": "2011 - 2013",
                "weight_kg": 70.0,
            },
            {
                "age": 80.0,
                "sex": "F",
                "race_group": None,
                "admission_type": "SOMETHING NEW",
                "insurance": None,
                "first_careunit": "PACU",
                "anchor_year_group": "2020 - 2022",
                "weight_kg": None,
            },
        ]
    )
    return values, (~np.isnan(values)).astype(np.uint8), static


def _hospital_b() -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    values = np.array([[[7, NAN, NAN], [NAN, 6, NAN], [NAN, 100, NAN]]], dtype=np.float32)
    mask = (~np.isnan(values)).astype(np.uint8)
    mask[0, 2, 1] = 0  # a value with mask 0 is not an observation: ignored everywhere
    row = {
        "age": 40.0,
        "sex": "M",
        "race_group": "asian",
        "admission_type": "URGENT",
        "insurance": "Medicaid",
        "first_careunit": "Coronary Care Unit (CCU)",
        "anchor_year_group": "2008 - 2010",
        "weight_kg": 90.0,
    }
    return values, mask, _static([row])


def _pooled() -> Normalizer:
    total = sum(local_moments(*h()) for h in (_hospital_a, _hospital_b))
    return Normalizer.from_moments(total)


def test_forward_fill_only_from_observed_bins() -> None:
    values = np.array([[[NAN], [2.0], [9.0], [NAN], [4.0]]])
    observed = np.array([[[False], [True], [False], [False], [True]]])
    filled = forward_fill(values, observed)
    np.testing.assert_array_equal(filled[0, :, 0], [NAN, 2.0, 2.0, 2.0, 4.0])


def test_moment_vector_layout() -> None:
    moments = local_moments(*_hospital_a())
    assert moments.dtype == torch.float64
    assert moments.shape == (3 * (3 + 2),)
    counts, sums, squares = moments.numpy().reshape(3, 5)
    np.testing.assert_array_equal(counts, [3, 2, 0, 2, 1])  # f0, f1, f2, age, weight_kg
    np.testing.assert_array_equal(sums, [9, 6, 0, 140, 70])
    np.testing.assert_array_equal(squares, [35, 20, 0, 10_000, 4_900])


def test_pooled_statistics_equal_pooling_the_raw_data() -> None:
    norm = _pooled()
    f0, f1 = np.array([1, 3, 5, 7.0]), np.array([2, 4, 6.0])
    np.testing.assert_allclose(norm.feature_mean, [f0.mean(), f1.mean(), 0.0])
    np.testing.assert_allclose(norm.feature_std, [f0.std(), f1.std(), 1.0])  # unseen: std 1
    np.testing.assert_allclose(norm.static_mean, [60.0, 80.0])
    np.testing.assert_allclose(norm.static_std, [np.std([60, 80, 40.0]), 10.0])
    np.testing.assert_array_equal(norm.feature_count, [4, 3, 0])


def test_exact_standardized_values_for_both_hospitals() -> None:
    norm = _pooled()
    s0, s1 = math.sqrt(5.0), math.sqrt(8.0 / 3.0)
    values, mask, static = _hospital_a()
    inputs = norm.model_inputs(values, mask, static)
    z = inputs.x[..., :3].numpy()
    np.testing.assert_allclose(z[0, :, 0], [-3 / s0, -3 / s0, -1 / s0], rtol=1e-6)
    np.testing.assert_allclose(z[0, :, 1], [0, 0, 0])  # never observed in the stay: global mean
    np.testing.assert_allclose(z[1, :, 0], [0, 1 / s0, 1 / s0], rtol=1e-6)
    np.testing.assert_allclose(z[1, :, 1], [-2 / s1, -2 / s1, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(z[..., 2], 0)  # never observed anywhere
    np.testing.assert_array_equal(inputs.x[..., 3:].numpy(), mask)  # original mask kept
    values_b, mask_b, static_b = _hospital_b()
    z_b = norm.model_inputs(values_b, mask_b, static_b).x[0, :, :3].numpy()
    np.testing.assert_allclose(z_b[:, 0], [3 / s0] * 3, rtol=1e-6)
    np.testing.assert_allclose(z_b[:, 1], [0, 2 / s1, 2 / s1], rtol=1e-6)  # 100 ignored
    assert inputs.x.dtype == torch.float32 and not torch.isnan(inputs.x).any()


def test_exact_static_encoding() -> None:
    norm = _pooled()
    values, mask, static = _hospital_a()
    s = norm.model_inputs(values, mask, static).static.numpy()
    names = static_feature_names()
    assert s.shape == (2, n_static_features()) == (2, len(names))
    row0 = dict(zip(names, s[0], strict=True))
    row1 = dict(zip(names, s[1], strict=True))
    age_std = np.std([60, 80, 40.0])
    assert row0["age"] == pytest.approx(0.0) and row1["age"] == pytest.approx(20 / age_std)
    assert row0["weight_kg"] == pytest.approx(-1.0) and row0["weight_kg_missing"] == 0
    assert row1["weight_kg"] == 0 and row1["weight_kg_missing"] == 1  # imputed by the mean
    hot0 = {n for n, v in row0.items() if v == 1 and "=" in n}
    hot1 = {n for n, v in row1.items() if v == 1 and "=" in n}
    assert hot0 == {
        "sex=M",
        "race_group=white",
        "admission_type=EW EMER.",
        "insurance=Medicare",
        "first_careunit=Medical Intensive Care Unit (MICU)",
        "anchor_year_group=2011 - 2013",
    }
    assert hot1 == {
        "sex=F",
        "race_group=unknown",
        "admission_type=other",
        "insurance=Other",
        "first_careunit=other",
        "anchor_year_group=2020 - 2022",
    }
    one_hot_width = sum(len(v.values) for v in CATEGORICAL_VOCABULARIES.values())
    assert s[:, 3:].sum() == 2 * len(CATEGORICAL_VOCABULARIES) and s.shape[1] == 3 + one_hot_width


def test_party_without_static_columns() -> None:
    values, mask, _ = _hospital_a()
    moments = local_moments(values, mask, None).numpy().reshape(3, 5)
    np.testing.assert_array_equal(moments[:, 3:], 0)
    inputs = _pooled().model_inputs(values, mask, None)
    assert inputs.static.shape == (2, 0)


def test_constant_feature_gets_unit_std_and_no_nan() -> None:
    values = np.full((2, 4, 1), 5.0, dtype=np.float32)
    norm = Normalizer.from_moments(local_moments(values, np.ones_like(values, dtype=np.uint8)))
    assert norm.feature_std[0] == 1.0 and norm.feature_mean[0] == 5.0
    z = norm.standardize_values(values, np.ones_like(values, dtype=np.uint8))
    np.testing.assert_array_equal(z, 0)


def test_normalizer_dict_round_trip() -> None:
    norm = _pooled()
    again = Normalizer.from_dict(norm.to_dict())
    for name in norm.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(again, name), getattr(norm, name))


def test_invalid_inputs_raise() -> None:
    values, mask, static = _hospital_a()
    with pytest.raises(UserError, match="must both be"):
        local_moments(values, mask[:, :2])
    with pytest.raises(UserError, match="missing from the split"):
        local_moments(values, mask, static.drop("age"))
    with pytest.raises(ValueError, match="not 3"):
        Normalizer.from_moments(torch.zeros(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.from_moments(torch.full((15,), math.nan, dtype=torch.float64))
    with pytest.raises(UserError, match="features"):
        _pooled().standardize_values(values[..., :2], mask[..., :2])


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_hospitals=st.integers(1, 4),
    observed_rate=st.floats(0.05, 1.0),
)
def test_secure_sum_of_moments_equals_pooled_statistics(
    seed: int, n_hospitals: int, observed_rate: float
) -> None:
    rng = np.random.default_rng(seed)
    n, t, f = 12, 5, 3
    raw = (rng.normal(size=(n, t, f)) * [1, 50, 0.01] + [0, 100, 7]).astype(np.float32)
    mask = (rng.random((n, t, f)) < observed_rate).astype(np.uint8)
    values = np.where(mask == 1, raw, np.nan).astype(np.float32)
    owner = rng.integers(0, n_hospitals, size=n)
    total = sum(local_moments(values[owner == h], mask[owner == h]) for h in range(n_hospitals))
    norm = Normalizer.from_moments(total)
    for j in range(f):
        seen = values[..., j][mask[..., j] == 1].astype(np.float64)
        if seen.size == 0:
            assert (norm.feature_mean[j], norm.feature_std[j]) == (0.0, 1.0)
            continue
        assert norm.feature_mean[j] == pytest.approx(seen.mean(), rel=1e-9, abs=1e-9)
        if seen.std() > 1e-6 * max(1.0, abs(seen.mean())):
            assert norm.feature_std[j] == pytest.approx(seen.std(), rel=1e-6)
    assert not np.isnan(norm.standardize_values(values, mask)).any()
