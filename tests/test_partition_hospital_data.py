"""`mimic_etl.hospital_data.load_split`: round trip from a partition and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.hospital_data import load_split
from crypten_fl.mimic_etl.partition import SPLIT_NAMES, partition
from helpers.cohort_fixture import LABEL_NAMES, random_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return random_cohort(tmp_path_factory.mktemp("c") / "cohort", n_patients=30, seed=8)


@pytest.fixture(scope="module")
def fed(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("f") / "fed"
    partition(cohort.path, out, hospitals=2, iid=True, seed=1)
    return out


def test_round_trip_horizontal(fed, cohort):
    total = 0
    for k in (0, 1):
        for split in SPLIT_NAMES:
            data = load_split(fed / f"hospital_{k}", split)
            rows = [cohort.row_of(int(key)) for key in data.keys]
            total += len(data)
            assert data.values.dtype == np.float32 and data.mask.dtype == np.uint8
            assert data.values.shape == (len(rows), cohort.n_bins, 6)
            np.testing.assert_array_equal(data.values, cohort.values[rows])
            np.testing.assert_array_equal(data.mask, cohort.mask[rows])
            np.testing.assert_array_equal(data.labels, cohort.labels[rows])
            np.testing.assert_array_equal(data.subject_ids, cohort.subject_ids[rows])
            assert data.labels.shape == (len(rows), 12) and data.labels.dtype == np.int8
            assert data.feature_names == [f["name"] for f in cohort.features]
            assert data.label_names == list(LABEL_NAMES)
            assert data.static_columns == data.manifest["static"]
            assert data.static["first_careunit"].to_list() == [cohort.careunits[r] for r in rows]
    assert total == len(cohort.stay_ids)


def test_round_trip_vertical_party_without_labels(cohort, tmp_path):
    partition(cohort.path, tmp_path / "fed", hospitals=3, vertical=True)
    data = load_split(tmp_path / "fed" / "hospital_1", "train")
    assert data.labels is None and data.subject_ids is None
    assert data.feature_names == ["creatinine", "lactate"] and data.static.width == 0
    assert data.values.shape[1:] == (cohort.n_bins, 2)
    assert load_split(tmp_path / "fed" / "hospital_0", "val").labels is not None


def test_empty_split_loads_as_empty_arrays(cohort, tmp_path):
    partition(cohort.path, tmp_path / "fed", hospitals=1, split=(1.0, 0.0, 0.0))
    data = load_split(tmp_path / "fed" / "hospital_0", "test")
    assert data.values.shape == (0, cohort.n_bins, 6) and data.labels.shape == (0, 12)


def broken_copy(fed, tmp_path):
    target = tmp_path / "hospital_0"
    shutil.copytree(fed / "hospital_0", target)
    return target


def edit_manifest(hospital, change):
    manifest = json.loads((hospital / "manifest.json").read_text())
    change(manifest)
    (hospital / "manifest.json").write_text(json.dumps(manifest))


def test_errors_name_the_file(fed, tmp_path):
    with pytest.raises(UserError, match="split 'dev'"):
        load_split(fed / "hospital_0", "dev")
    with pytest.raises(UserError, match="hospital directory not found"):
        load_split(tmp_path / "nope", "train")
    hospital = broken_copy(fed, tmp_path)
    (hospital / "val.parquet").unlink()
    with pytest.raises(UserError, match=r"val\.parquet: file not found"):
        load_split(hospital, "val")
    edit_manifest(hospital, lambda m: m.update(n_bins=m["n_bins"] + 1))
    with pytest.raises(UserError, match=r"train\.parquet: column values is Array.*expected"):
        load_split(hospital, "train")
    edit_manifest(hospital, lambda m: m.update(n_bins=m["n_bins"] - 1, labels=["sepsis", "x"]))
    with pytest.raises(UserError, match=r"missing column\(s\) x"):
        load_split(hospital, "train")
    edit_manifest(hospital, lambda m: m.pop("features"))
    with pytest.raises(UserError, match=r"manifest\.json: malformed hospital manifest: 'features'"):
        load_split(hospital, "train")
    (hospital / "manifest.json").write_text("[")
    with pytest.raises(UserError, match="not valid JSON"):
        load_split(hospital, "train")


def test_row_count_and_label_values_are_checked(fed, tmp_path):
    hospital = broken_copy(fed, tmp_path)
    edit_manifest(hospital, lambda m: m["counts"].update(train=m["counts"]["train"] + 1))
    with pytest.raises(UserError, match=r"manifest\.json says"):
        load_split(hospital, "train")
    frame = pl.read_parquet(hospital / "test.parquet")
    frame.with_columns(pl.lit(2, pl.Int8).alias("sepsis")).write_parquet(hospital / "test.parquet")
    with pytest.raises(UserError, match="only 0/1"):
        load_split(hospital, "test")
