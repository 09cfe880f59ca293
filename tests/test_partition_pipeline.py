"""`partition` end to end on small hand-built cohorts: FED/ files, integrity, exact values."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import MARKER
from crypten_fl.mimic_etl.partition import SPLIT_NAMES, partition
from helpers.cohort_fixture import LABEL_NAMES, STATIC_FEATURES, random_cohort, write_cohort
from hypothesis import given, settings
from hypothesis import strategies as st


def read_fed(fed: Path) -> dict[tuple[int, str], pl.DataFrame]:
    """Every split file of FED/, keyed by (hospital, split)."""
    hospitals = sorted(int(p.name.split("_")[1]) for p in fed.glob("hospital_*"))
    return {
        (k, s): pl.read_parquet(fed / f"hospital_{k}" / f"{s}.parquet")
        for k in hospitals
        for s in SPLIT_NAMES
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return random_cohort(tmp_path_factory.mktemp("c") / "cohort", n_patients=40, seed=3)


@pytest.fixture(scope="module")
def fed(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("f") / "fed"
    summary = partition(cohort.path, out, hospitals=3, scheme="dirichlet", seed=5)
    return out, summary


def test_layout_and_columns(fed, cohort):
    out, summary = fed
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER,
        "hospital_0",
        "hospital_1",
        "hospital_2",
        "label_prevalence.png",
        "partition.json",
    ]
    assert (out / "label_prevalence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frame = pl.read_parquet(out / "hospital_0" / "train.parquet")
    assert frame.columns == [
        "key",
        "subject_id",
        "stay_id",
        "hadm_id",
        *STATIC_FEATURES,
        *LABEL_NAMES,
        "values",
        "mask",
    ]
    assert frame.schema["key"] == pl.String and frame.schema["subject_id"] == pl.Int64
    assert frame.schema["values"] == pl.Array(pl.Float32, (cohort.n_bins, 6))
    assert frame.schema["mask"] == pl.Array(pl.UInt8, (cohort.n_bins, 6))
    assert all(frame.schema[name] == pl.Int8 for name in LABEL_NAMES)
    assert frame["key"].to_list() == [str(s) for s in frame["stay_id"].to_list()]
    manifest = json.loads((out / "hospital_0" / "manifest.json").read_text())
    assert manifest["hospital"] == 0 and manifest["vertical"] is False
    assert manifest["label_party"] is True
    assert manifest["features"] == cohort.features
    assert manifest["labels"] == list(LABEL_NAMES) and manifest["static"] == STATIC_FEATURES
    assert (manifest["n_bins"], manifest["bin_hours"]) == (cohort.n_bins, cohort.bin_hours)
    assert manifest["counts"] == summary.hospitals[0].split_stays
    assert set(manifest["prevalence"]) == set(SPLIT_NAMES)


def test_partition_json(fed, cohort):
    out, summary = fed
    record = json.loads((out / "partition.json").read_text())
    assert record["scheme"] == "dirichlet" and record["seed"] == 5 and record["hospitals"] == 3
    assert record["parameters"]["alpha"] == 0.5 and record["parameters"]["split"] == [0.7, 0.1, 0.2]
    assert record["totals"]["stays"] == len(cohort.stay_ids)
    assert record["totals"]["patients"] == len(np.unique(cohort.subject_ids))
    assert record["mean_js_divergence"] == summary.mean_js_divergence
    per_js = [h["js_divergence"] for h in record["per_hospital"]]
    assert record["mean_js_divergence"] == pytest.approx(np.mean(per_js), abs=1e-6)
    pooled = cohort.labels.mean(axis=0)
    assert list(record["pooled_prevalence"].values()) == pytest.approx(pooled, abs=1e-6)
    for h in record["per_hospital"]:
        assert sum(h["split_stays"].values()) == h["stays"]


def test_values_and_mask_equal_the_cohort_grid(fed, cohort):
    out, _ = fed
    grid = pl.read_parquet(cohort.path / "timeseries.parquet")
    names = [f["name"] for f in cohort.features]
    frames = read_fed(out)
    checked = 0
    for frame in frames.values():
        for row in frame.iter_rows(named=True):
            if checked >= 12:
                break
            stay = grid.filter(pl.col("stay_id") == row["stay_id"]).sort("bin")
            expected = stay.select(names).to_numpy().astype(np.float32)  # NULL -> NaN
            np.testing.assert_array_equal(np.array(row["values"], np.float32), expected)
            expected_mask = stay.select([f"{n}_mask" for n in names]).to_numpy()
            np.testing.assert_array_equal(np.array(row["mask"], np.uint8), expected_mask)
            i = cohort.row_of(row["stay_id"])
            assert [row[n] for n in LABEL_NAMES] == cohort.labels[i].tolist()
            assert row["first_careunit"] == cohort.careunits[i]
            checked += 1
    assert checked == 12
    assert any(np.isnan(np.array(r, np.float32)).any() for r in frames[(0, "train")]["values"])


def check_integrity(out: Path, stay_ids: np.ndarray, subject_of_stay: dict[int, int]) -> None:
    """Every stay exactly once; a patient in one hospital and one split only."""
    frames = read_fed(out)
    seen = np.concatenate([f["stay_id"].to_numpy() for f in frames.values()])
    assert sorted(seen.tolist()) == sorted(stay_ids.tolist())
    place: dict[int, tuple[int, str]] = {}
    for (k, s), frame in frames.items():
        for stay, subject in zip(frame["stay_id"], frame["subject_id"], strict=True):
            assert subject_of_stay[stay] == subject
            assert place.setdefault(subject, (k, s)) == (k, s)


def test_patient_integrity_on_fixture(fed, cohort):
    check_integrity(
        fed[0], cohort.stay_ids, dict(zip(cohort.stay_ids, cohort.subject_ids, strict=True))
    )


@settings(max_examples=8, deadline=None)
@given(
    n_patients=st.integers(2, 14),
    max_stays=st.integers(1, 3),
    data=st.data(),
    scheme=st.sampled_from(["iid", "dirichlet", "quantity", "careunit"]),
    split=st.sampled_from([(0.7, 0.1, 0.2), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0)]),
    seed=st.integers(0, 1000),
)
def test_hospitals_disjoint_and_complete(n_patients, max_stays, data, scheme, split, seed):
    limit = 3 if scheme == "careunit" else n_patients
    k = data.draw(st.integers(1, min(limit, n_patients, 4)))
    with tempfile.TemporaryDirectory() as tmp:
        fx = random_cohort(Path(tmp) / "c", n_patients=n_patients, max_stays=max_stays, seed=seed)
        if scheme == "careunit" and k > len(set(fx.careunits)):
            return
        partition(fx.path, Path(tmp) / "fed", hospitals=k, scheme=scheme, split=split, seed=seed)
        subject_of = dict(zip(fx.stay_ids, fx.subject_ids, strict=True))
        check_integrity(Path(tmp) / "fed", fx.stay_ids, subject_of)
        record = json.loads((Path(tmp) / "fed" / "partition.json").read_text())
        assert all(h["patients"] >= 1 for h in record["per_hospital"])


def test_same_seed_same_files_other_seed_other_assignment(cohort, tmp_path):
    runs = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        partition(cohort.path, tmp_path / name, hospitals=3, seed=seed)
        runs[name] = read_fed(tmp_path / name)
    for key, frame in runs["a"].items():
        assert frame.equals(runs["b"][key], null_equal=True)
    ids = {
        name: [sorted(f["stay_id"].to_list()) for f in run.values()] for name, run in runs.items()
    }
    assert ids["a"] != ids["c"]


def careunit_cohort(path: Path) -> None:
    """Units A(5 patients) B(3) C(2) D(1); patient 10's first stay (by intime) is in C."""
    subjects = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 11]
    units = ["A"] * 5 + ["B"] * 3 + ["C", "A", "C", "D"]
    days = [1] * 9 + [9, 2, 1]  # patient 10: stay 30000010 (unit A) on day 9, 30000011 (C) day 2
    intimes = [datetime(2150, 1, d) for d in days]
    labels = np.zeros((12, 12), np.int8)
    write_cohort(path, subjects, units, labels, intimes=intimes)


def test_careunit_natural_split_exact(tmp_path):
    careunit_cohort(tmp_path / "c")
    partition(tmp_path / "c", tmp_path / "fed", hospitals=2, scheme="careunit")
    frames = read_fed(tmp_path / "fed")
    units = {k: set() for k in (0, 1)}
    subjects = {k: set() for k in (0, 1)}
    for (k, _), frame in frames.items():
        units[k] |= set(frame["first_careunit"])
        subjects[k] |= set(frame["subject_id"])
    # A(5) -> H0, B(3) -> H1, C(2) -> H1, D(1) -> H0 (tie 5/5); patient 10 follows unit C
    assert subjects[0] == {1, 2, 3, 4, 5, 11}
    assert subjects[1] == {6, 7, 8, 9, 10}
    assert units[1] == {"A", "B", "C"}  # patient 10's later stay in A comes along


def test_nan_stays_nan_and_unsorted_grid_is_accepted(tmp_path):
    fx = random_cohort(tmp_path / "c", n_patients=6, seed=1)
    grid = pl.read_parquet(fx.path / "timeseries.parquet")
    grid.reverse().write_parquet(fx.path / "timeseries.parquet")
    partition(fx.path, tmp_path / "fed", hospitals=1, split=(1.0, 0.0, 0.0))
    frame = pl.read_parquet(tmp_path / "fed" / "hospital_0" / "train.parquet")
    values = frame["values"].to_numpy()
    order = [fx.row_of(s) for s in frame["stay_id"]]
    np.testing.assert_array_equal(values, fx.values[order])
    np.testing.assert_array_equal(frame["mask"].to_numpy(), fx.mask[order])
    assert np.isnan(values).sum() == (fx.mask == 0).sum()


def test_failed_run_leaves_no_output(cohort, tmp_path):
    with pytest.raises(UserError, match="--hospitals 5: scheme careunit"):
        partition(cohort.path, tmp_path / "fed", hospitals=5, scheme="careunit")
    assert list(tmp_path.iterdir()) == []


def test_out_may_not_overlap_the_cohort(cohort, tmp_path):
    with pytest.raises(UserError, match="fed: lies inside --cohort"):
        partition(cohort.path, cohort.path / "fed", hospitals=2)
    with pytest.raises(UserError, match=": contains --cohort"):
        partition(cohort.path, cohort.path.parent, hospitals=2, overwrite=True)
    assert (cohort.path / "timeseries.parquet").is_file()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: (p / "labels.parquet").unlink(), "missing labels.parquet"),
        (lambda p: (p / "manifest.json").write_text("{"), "not valid JSON"),
        (lambda p: (p / "manifest.json").write_text('{"features": []}'), "'features' must be"),
        (
            lambda p: (
                pl.read_parquet(p / "timeseries.parquet")
                .head(5)
                .write_parquet(p / "timeseries.parquet")
            ),
            "expected stays × n_bins",
        ),
        (
            lambda p: (
                pl.read_parquet(p / "labels.parquet")
                .drop("sepsis")
                .write_parquet(p / "labels.parquet")
            ),
            "missing column(s) sepsis",
        ),
        (lambda p: (p / "static.parquet").write_text("not parquet"), "not a readable parquet"),
        (
            lambda p: (
                pl.read_parquet(p / "static.parquet")
                .with_columns(pl.col("intime").cast(pl.String))
                .write_parquet(p / "static.parquet")
            ),
            "column intime is String, expected a timestamp",
        ),
        (
            lambda p: (
                pl.read_parquet(p / "labels.parquet")
                .with_columns(pl.lit(None, pl.Int8).alias("aki"))
                .write_parquet(p / "labels.parquet")
            ),
            "label columns must hold only 0/1",
        ),
    ],
)
def test_bad_cohort_is_one_clear_error(tmp_path, mutate, message):
    fx = random_cohort(tmp_path / "c", n_patients=5)
    mutate(fx.path)
    with pytest.raises(UserError) as err:
        partition(fx.path, tmp_path / "fed", hospitals=2)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "fed").exists()
