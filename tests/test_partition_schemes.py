"""Partition schemes, patient table and splits as pure functions (no files)."""

from __future__ import annotations

import itertools
from datetime import datetime

import numpy as np
import polars as pl
import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.partition.measures import partition_js
from crypten_fl.mimic_etl.partition.patients import (
    PatientTable,
    build_patient_table,
    rarest_positive_label,
)
from crypten_fl.mimic_etl.partition.schemes import (
    SCHEMES,
    assign_careunit,
    careunit_mapping,
    min_hospital_size,
    top_up,
)
from crypten_fl.mimic_etl.partition.splits import apportion, assign_splits, split_sizes
from hypothesis import given, settings
from hypothesis import strategies as st

UNITS = np.array(["MICU", "SICU", "CCU", "CVICU", "Neuro"])


def synthetic_patients(
    n: int, seed: int, n_units: int = 3, n_labels: int = 12
) -> tuple[PatientTable, np.ndarray]:
    """One stay per patient, independent labels with prevalence 10–65 %, random units."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, n_labels)) < np.linspace(0.1, 0.65, n_labels)).astype(np.int8)
    stay_patient = np.arange(n)
    return PatientTable(
        subject_ids=np.arange(n, dtype=np.int64),
        stay_patient=stay_patient,
        first_careunit=UNITS[rng.integers(0, n_units, n)],
        label_class=rarest_positive_label(labels, stay_patient, n),
        n_labels=n_labels,
    ), labels


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 120),
    data=st.data(),
    scheme=st.sampled_from(sorted(SCHEMES)),
    alpha=st.sampled_from([0.01, 0.1, 0.5, 5.0, 1e4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_patient_in_exactly_one_nonempty_hospital(n, data, scheme, alpha, seed):
    k = data.draw(st.integers(1, n))
    patients, _ = synthetic_patients(n, seed % 1000, n_units=5)
    n_units = len(np.unique(patients.first_careunit))
    if scheme == "careunit" and k > n_units:
        with pytest.raises(UserError, match="care unit"):
            SCHEMES[scheme](patients, k, alpha, np.random.default_rng(seed))
        return
    hospital = SCHEMES[scheme](patients, k, alpha, np.random.default_rng(seed))
    assert hospital.shape == (n,)
    assert hospital.min() >= 0 and hospital.max() < k
    sizes = np.bincount(hospital, minlength=k)
    assert sizes.sum() == n and (sizes >= 1).all()
    if scheme in ("dirichlet", "quantity"):
        assert (sizes >= min_hospital_size(n, k)).all()
    again = SCHEMES[scheme](patients, k, alpha, np.random.default_rng(seed))
    np.testing.assert_array_equal(hospital, again)


def test_iid_sizes_equal_within_one():
    patients, _ = synthetic_patients(103, 0)
    sizes = np.bincount(SCHEMES["iid"](patients, 5, 1.0, np.random.default_rng(1)))
    assert sorted(sizes.tolist()) == [20, 20, 21, 21, 21]


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8), seed=st.integers(0, 1000))
def test_top_up_reaches_minimum_and_keeps_everyone(sizes, seed):
    n, k = sum(sizes), len(sizes)
    if n < k:
        return
    assignment = np.repeat(np.arange(k), sizes)
    minimum = min_hospital_size(n, k)
    out = top_up(assignment, k, minimum, np.random.default_rng(seed))
    new_sizes = np.bincount(out, minlength=k)
    assert new_sizes.sum() == n and (new_sizes >= minimum).all()
    # only patients of hospitals above the minimum were moved
    moved = out != assignment
    assert (np.asarray(sizes)[assignment[moved]] > minimum).all()


def test_careunit_mapping_greedy_by_size():
    # A(5) -> H0, B(3) -> H1, C(2) -> H1 (load 3 < 5), D(1) -> tie 5/5 -> H0
    mapping = careunit_mapping(["C", "A", "D", "B"], [2, 5, 1, 3], 2)
    assert mapping == {"A": 0, "B": 1, "C": 1, "D": 0}
    assert careunit_mapping(["X", "Y", "Z"], [4, 4, 4], 3) == {"X": 0, "Y": 1, "Z": 2}


def test_patient_follows_first_stay_unit_by_intime():
    t = datetime(2150, 1, 1)
    static = pl.DataFrame(
        {
            # patient 7: stay 2 (CCU) is earlier than stay 1 (MICU) despite the larger stay id
            "stay_id": [1, 2, 3, 4],
            "subject_id": [7, 7, 8, 9],
            "intime": [t.replace(day=5), t.replace(day=2), t, t],
            "first_careunit": ["MICU", "CCU", "MICU", "SICU"],
        }
    )
    patients = build_patient_table(static, np.zeros((4, 3), np.int8))
    assert patients.subject_ids.tolist() == [7, 8, 9]
    assert patients.stay_patient.tolist() == [0, 0, 1, 2]
    assert patients.first_careunit.tolist() == ["CCU", "MICU", "SICU"]
    hospital = assign_careunit(patients, 3, 0.5, np.random.default_rng(0))
    # MICU/CCU/SICU have one patient each: ties by name -> CCU H0, MICU H1, SICU H2
    assert hospital.tolist() == [0, 1, 2]


def test_rarest_positive_label_exact():
    # stay-level prevalence: label0 3/5, label1 1/5, label2 2/5 -> rank 1, 2, 0
    labels = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1], [0, 0, 0]], np.int8)
    stay_patient = np.array([0, 1, 2, 2, 3])
    assert rarest_positive_label(labels, stay_patient, 4).tolist() == [0, 1, 2, 3]


def test_dirichlet_huge_alpha_is_close_to_iid():
    js_dirichlet, js_iid = [], []
    for seed in range(8):
        patients, labels = synthetic_patients(800, seed)
        for scheme, out in (("dirichlet", js_dirichlet), ("iid", js_iid)):
            hospital = SCHEMES[scheme](patients, 4, 1e5, np.random.default_rng(seed))
            out.append(partition_js(labels, hospital[patients.stay_patient], 4))
    assert np.mean(js_dirichlet) < 1e-3
    assert np.mean(js_dirichlet) <= np.mean(js_iid) + 2e-4


@pytest.mark.parametrize("scheme", ["dirichlet"])
def test_non_iid_measure_rises_as_alpha_falls(scheme):
    """Mean JS over a fixed set of seeds is strictly decreasing in alpha."""
    alphas = [100.0, 1.0, 0.3, 0.05]
    means = []
    for alpha in alphas:
        js = []
        for seed in range(10):
            patients, labels = synthetic_patients(600, 100 + seed)
            hospital = SCHEMES[scheme](patients, 4, alpha, np.random.default_rng(seed))
            js.append(partition_js(labels, hospital[patients.stay_patient], 4))
        means.append(np.mean(js))
    assert all(a < b for a, b in itertools.pairwise(means)), means
    assert means[-1] > 10 * means[0]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 500),
    weights=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=6).filter(lambda w: sum(w) > 0),
)
def test_apportion_sums_and_stays_within_one(n, weights):
    counts = apportion(n, weights)
    assert counts.sum() == n and (counts >= 0).all()
    exact = n * np.asarray(weights) / sum(weights)
    assert (np.abs(counts - exact) < 1 + 1e-9).all()


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), split=st.sampled_from([(0.7, 0.1, 0.2), (0.8, 0.2, 0.0), (1, 0, 0)]))
def test_split_sizes_fill_positive_splits_when_possible(n, split):
    sizes = split_sizes(n, split)
    assert sizes.sum() == n
    positive = [j for j, f in enumerate(split) if f > 0]
    if n >= len(positive):
        assert all(sizes[j] >= 1 for j in positive)
    assert all(sizes[j] == 0 for j, f in enumerate(split) if f == 0)


def test_split_sizes_exact():
    assert split_sizes(10, (0.7, 0.1, 0.2)).tolist() == [7, 1, 2]
    assert split_sizes(3, (0.7, 0.1, 0.2)).tolist() == [1, 1, 1]
    assert split_sizes(2, (0.7, 0.1, 0.2)).tolist() == [1, 0, 1]


@settings(max_examples=100, deadline=None)
@given(hospitals=st.lists(st.integers(0, 4), min_size=1, max_size=80), seed=st.integers(0, 10_000))
def test_assign_splits_per_hospital(hospitals, seed):
    hospital = np.asarray(hospitals)
    split = assign_splits(hospital, (0.6, 0.2, 0.2), np.random.default_rng(seed))
    assert set(np.unique(split)) <= {0, 1, 2}
    for k in np.unique(hospital):
        counts = np.bincount(split[hospital == k], minlength=3)
        assert counts.tolist() == split_sizes(int((hospital == k).sum()), (0.6, 0.2, 0.2)).tolist()
    again = assign_splits(hospital, (0.6, 0.2, 0.2), np.random.default_rng(seed))
    np.testing.assert_array_equal(split, again)
