"""Vertical federation: pseudonymous keys, feature groups per party, label party, missing stays."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.partition import SPLIT_NAMES, partition
from crypten_fl.mimic_etl.partition.vertical import (
    missing_count,
    parse_feature_groups,
    pseudonym_keys,
)
from helpers.cohort_fixture import LABEL_NAMES, STATIC_FEATURES, random_cohort

GROUPS = ["vitals", "labs", "meds", "urine", "static"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return random_cohort(tmp_path_factory.mktemp("c") / "cohort", n_patients=70, seed=4)


@pytest.fixture(scope="module")
def fed(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("f") / "fed"
    partition(cohort.path, out, hospitals=None, vertical=True, label_party=1, seed=2)
    return out


def party_frames(fed: Path, party: int) -> dict[str, pl.DataFrame]:
    return {s: pl.read_parquet(fed / f"hospital_{party}" / f"{s}.parquet") for s in SPLIT_NAMES}


def stay_of_rows(cohort, frame: pl.DataFrame, feature_idx: list[int]) -> list[int]:
    """Recover which cohort stay each row is, by its (unique, random) feature values."""
    values = frame["values"].to_numpy()
    reference = np.nan_to_num(cohort.values[:, :, feature_idx], nan=-1e9)
    found = []
    for row in np.nan_to_num(values, nan=-1e9):
        match = np.flatnonzero((reference == row).all(axis=(1, 2)))
        assert len(match) == 1
        found.append(int(cohort.stay_ids[match[0]]))
    return found


def test_default_parties_columns_and_labels(fed, cohort):
    expected = {
        0: ["heart_rate", "sbp"],
        1: ["creatinine", "lactate"],
        2: ["vasopressor", "urine_output"],
    }
    for party, names in expected.items():
        manifest = json.loads((fed / f"hospital_{party}" / "manifest.json").read_text())
        assert [f["name"] for f in manifest["features"]] == names
        assert manifest["vertical"] is True and manifest["label_party"] is (party == 1)
        assert manifest["labels"] == (list(LABEL_NAMES) if party == 1 else [])
        for frame in party_frames(fed, party).values():
            assert not {"subject_id", "stay_id", "hadm_id", "intime"} & set(frame.columns)
            assert frame.schema["values"] == pl.Array(pl.Float32, (cohort.n_bins, 2))
            has_labels = set(LABEL_NAMES) <= set(frame.columns)
            assert has_labels is (party == 1)
            assert ("age" in frame.columns) is (party == 2)
            assert manifest["static"] == (
                STATIC_FEATURES
                if party == 2
                else []
            )
    record = json.loads((fed / "partition.json").read_text())
    assert record["parameters"]["feature_groups"] == "vitals;labs;meds,urine,static"


def test_keys_are_pseudonyms_identical_across_parties(fed, cohort):
    ids = {str(v) for v in [*cohort.stay_ids, *cohort.subject_ids]}
    ids |= {str(v) for v in pl.read_parquet(cohort.path / "static.parquet")["hadm_id"]}
    key_of_stay: dict[int, dict[int, str]] = {0: {}, 1: {}, 2: {}}
    split_of_stay: dict[int, dict[int, str]] = {0: {}, 1: {}, 2: {}}
    for party, idx in ((0, [0, 1]), (1, [2, 3]), (2, [4, 5])):
        for split, frame in party_frames(fed, party).items():
            keys = frame["key"].to_list()
            assert all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
            assert not ids & set(keys)
            for stay, key in zip(stay_of_rows(cohort, frame, idx), keys, strict=True):
                key_of_stay[party][stay] = key
                split_of_stay[party][stay] = split
    label_keys = key_of_stay[1]
    assert len(label_keys) == len(cohort.stay_ids)  # the label party has every stay
    assert len(set(label_keys.values())) == len(label_keys)
    for party in (0, 2):
        assert set(key_of_stay[party]) < set(label_keys)
        assert all(label_keys[s] == k for s, k in key_of_stay[party].items())
        assert all(split_of_stay[1][s] == sp for s, sp in split_of_stay[party].items())


def test_non_label_parties_miss_a_share_and_are_shuffled(fed, cohort):
    label = party_frames(fed, 1)
    for party in (0, 2):
        frames = party_frames(fed, party)
        for split in SPLIT_NAMES:
            n = label[split].height
            assert frames[split].height == n - missing_count(n)
        assert frames["train"]["key"].to_list() != label["train"]["key"].to_list()
    record = json.loads((fed / "partition.json").read_text())
    missing = [h["missing_stays"] for h in record["per_hospital"]]
    assert missing[1] == 0 and missing[0] > 0 and missing[2] > 0


def test_split_is_by_patient_and_shared(fed, cohort):
    subject_of = dict(zip(cohort.stay_ids, cohort.subject_ids, strict=True))
    frames = party_frames(fed, 1)
    split_of_subject: dict[int, str] = {}
    for split, frame in frames.items():
        for stay in stay_of_rows(cohort, frame, [2, 3]):
            assert split_of_subject.setdefault(subject_of[stay], split) == split


def test_keys_change_between_runs_with_the_same_seed(cohort, tmp_path):
    keys = []
    for name in ("a", "b"):
        partition(cohort.path, tmp_path / name, hospitals=3, vertical=True, seed=2)
        keys.append(set(pl.read_parquet(tmp_path / name / "hospital_0" / "train.parquet")["key"]))
    assert not keys[0] & keys[1]


def test_pseudonym_keys_are_hmac_of_stay_id():
    keys = pseudonym_keys(np.array([1, 2, 1]), b"k" * 32)
    assert keys[0] == keys[2] != keys[1]
    assert keys[1] == hmac.new(b"k" * 32, b"2", hashlib.sha256).hexdigest()
    assert pseudonym_keys(np.array([1]), b"j" * 32)[0] != keys[0]


def test_missing_count():
    assert [missing_count(n) for n in (0, 1, 2, 50, 51, 100, 1000)] == [0, 0, 1, 1, 2, 2, 20]
    assert all(missing_count(n) == math.ceil(0.02 * n) for n in range(2, 500))


def test_parse_feature_groups():
    assert parse_feature_groups(None, GROUPS) == [
        ("vitals",),
        ("labs",),
        ("meds", "urine", "static"),
    ]
    assert parse_feature_groups(None, ["vitals", "labs", "static"]) == [
        ("vitals",),
        ("labs",),
        ("static",),
    ]
    assert parse_feature_groups(" vitals , labs ; static", GROUPS) == [
        ("vitals", "labs"),
        ("static",),
    ]
    with pytest.raises(UserError, match="unknown group"):
        parse_feature_groups("vitals;bogus", GROUPS)
    with pytest.raises(UserError, match="more than one party"):
        parse_feature_groups("vitals;vitals,labs", GROUPS)
    with pytest.raises(UserError, match="at least one group"):
        parse_feature_groups("vitals;;labs", GROUPS)


def test_custom_groups_and_static_only_party(cohort, tmp_path):
    summary = partition(
        cohort.path,
        tmp_path / "fed",
        hospitals=2,
        vertical=True,
        feature_groups="vitals,labs,meds,urine;static",
    )
    assert [h.n_features for h in summary.hospitals] == [6, 0]
    frame = pl.read_parquet(tmp_path / "fed" / "hospital_1" / "train.parquet")
    assert frame.schema["values"] == pl.Array(pl.Float32, (cohort.n_bins, 0))
    assert "sepsis" not in frame.columns and "age" in frame.columns


def test_vertical_hospital_count_must_match_parties(cohort, tmp_path):
    with pytest.raises(UserError, match="--hospitals 2: --vertical needs one hospital per party"):
        partition(cohort.path, tmp_path / "fed", hospitals=2, vertical=True)
    with pytest.raises(UserError, match="--label-party 3"):
        partition(cohort.path, tmp_path / "fed", hospitals=None, vertical=True, label_party=3)
    with pytest.raises(UserError, match="unknown group"):
        partition(
            cohort.path,
            tmp_path / "fed",
            hospitals=None,
            vertical=True,
            feature_groups="vitals;scores",
        )
    assert not (tmp_path / "fed").exists()
