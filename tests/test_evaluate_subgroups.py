"""Subgroup binning: exact age bands, sex and race groups, and reading them from a hospital."""

from __future__ import annotations

import math

import numpy as np
import pytest
from crypten_fl.fedtrain.evaluate.subgroups import (
    FAMILIES,
    SUBGROUPS,
    age_band,
    membership,
    read_attributes,
)
from crypten_fl.mimic_etl.hospital_data import load_split
from crypten_fl.mimic_etl.partition.pipeline import partition
from helpers.cohort_fixture import random_cohort


@pytest.mark.parametrize("age, band", [
    (17.9, "unknown"), (18, "18-44"), (44.99, "18-44"), (45, "45-64"), (64.9, "45-64"),
    (65, "65-79"), (79.99, "65-79"), (80, "80+"), (102, "80+"), (None, "unknown"),
    (math.nan, "unknown"),
])
def test_age_bands(age, band) -> None:
    assert age_band(age) == band


def test_membership_by_hand() -> None:
    attributes = {"age": [30.0, 70.0, None, 91.0], "sex": ["F", "M", None, "X"],
                  "race": ["white", "asian", "unknown", "pacific"]}
    groups = membership(attributes, 4)
    assert groups.shape == (len(SUBGROUPS), 4)
    member = {g: [i for i in range(4) if groups[k, i]] for k, g in enumerate(SUBGROUPS)}
    assert member[("age", "18-44")] == [0] and member[("age", "65-79")] == [1]
    assert member[("age", "unknown")] == [2] and member[("age", "80+")] == [3]
    assert member[("sex", "F")] == [0] and member[("sex", "M")] == [1]
    assert member[("sex", "unknown")] == [2, 3]
    assert member[("race", "white")] == [0] and member[("race", "asian")] == [1]
    assert member[("race", "unknown")] == [2, 3] and member[("race", "other")] == []


def test_each_family_covers_every_stay_once_and_missing_columns_are_unknown() -> None:
    rng = np.random.default_rng(0)
    n = 50
    groups = membership({"age": rng.uniform(0, 100, n).tolist()}, n)
    start = 0
    for family, names in FAMILIES.items():
        block = groups[start : start + len(names)]
        assert (block.sum(axis=0) == 1).all(), family
        start += len(names)
    assert groups[SUBGROUPS.index(("sex", "unknown"))].all()
    with pytest.raises(ValueError, match="3 values each"):
        membership({"age": [1.0, 2.0]}, 3)


def test_attributes_are_read_in_the_row_order_of_the_split(tmp_path) -> None:
    random_cohort(tmp_path / "cohort", n_patients=60, seed=3)
    partition(tmp_path / "cohort", tmp_path / "fed", hospitals=2, seed=0)
    hospital = tmp_path / "fed" / "hospital_1"
    attributes = read_attributes(hospital)
    static = load_split(hospital, "test").static
    assert attributes["age"] == static["age"].to_list()
    assert attributes["sex"] == static["sex"].to_list()
    assert attributes["race"] == static["race_group"].to_list()
