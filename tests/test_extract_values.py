"""`extract` on the hand-built fixture: every output value, mask, label and cohort count."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from crypten_fl.common.outdir import MARKER
from crypten_fl.mimic_etl.extract import extract
from crypten_fl.mimic_etl.extract.definitions import definition_hashes, load_features
from helpers.mimic_fixture import (
    EXPECTED_CELLS,
    EXPECTED_FLOW,
    EXPECTED_LABELS,
    EXPECTED_STATIC,
    EXPECTED_STAYS,
    LABELS,
    write_mimic,
)

FEATURES = load_features()
N_BINS = 24


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("extract")
    write_mimic(root / "mimic")
    extract(root / "mimic", root / "cohort")
    return root / "cohort"


def test_output_files_are_exactly_the_contract(cohort: Path) -> None:
    assert sorted(p.name for p in cohort.iterdir()) == [
        MARKER, "cohort_flow.json", "labels.parquet", "manifest.json", "static.parquet",
        "timeseries.parquet",
    ]


def test_cohort_flow_counts(cohort: Path) -> None:
    flow = json.loads((cohort / "cohort_flow.json").read_text())
    assert [(s["step"], s["remaining"], s["removed"]) for s in flow] == EXPECTED_FLOW
    assert all(set(s) == {"step", "description", "remaining", "removed"} for s in flow)


def test_timeseries_is_the_complete_sorted_grid(cohort: Path) -> None:
    ts = pl.read_parquet(cohort / "timeseries.parquet")
    assert ts.height == len(EXPECTED_STAYS) * N_BINS
    assert ts["stay_id"].to_list() == [s for s in EXPECTED_STAYS for _ in range(N_BINS)]
    assert ts["bin"].to_list() == list(range(N_BINS)) * len(EXPECTED_STAYS)
    expected_columns = ["stay_id", "bin"]
    for f in FEATURES:
        expected_columns += [f.name, f"{f.name}_mask"]
    assert ts.columns == expected_columns
    assert ts.schema["stay_id"] == pl.Int64 and ts.schema["bin"] == pl.Int16
    assert all(ts.schema[f.name] == pl.Float32 for f in FEATURES)
    assert all(ts.schema[f"{f.name}_mask"] == pl.UInt8 for f in FEATURES)


def test_every_cell_value_and_mask(cohort: Path) -> None:
    """Each listed cell has its exact value; every other cell is unobserved (or flag 0)."""
    ts = pl.read_parquet(cohort / "timeseries.parquet")
    for row in ts.iter_rows(named=True):
        for f in FEATURES:
            expected = EXPECTED_CELLS.get((row["stay_id"], row["bin"], f.name))
            value, mask = row[f.name], row[f"{f.name}_mask"]
            where = (row["stay_id"], row["bin"], f.name)
            if f.group == "meds":
                assert mask == 1, where
                assert value == (expected or 0.0), where
            elif expected is None:
                assert (value, mask) == (None, 0), where
            else:
                assert mask == 1, where
                assert math.isclose(value, expected, rel_tol=1e-6), (where, value)


@pytest.mark.parametrize(
    ("cell", "rule"),
    [
        ((1001, 0, "heart_rate"), "duplicate charting counted once, text valuenum ignored"),
        ((1001, 0, "sbp"), "NIBP + arterial merged; same (time, value) once"),
        ((1001, 0, "temperature"), "98.6 °F -> 37 °C averaged with 38 °C"),
        ((1001, 0, "fio2"), "fraction 0.5 -> 50 %"),
        ((1001, 1, "creatinine"), "NULL-hadm lab matched by subject and time"),
        ((1001, 1, "urine_output"), "irrigant in subtracted from out"),
        ((1001, 2, "urine_output"), "observed zero output"),
    ],
)
def test_named_rules(cohort: Path, cell: tuple[int, int, str], rule: str) -> None:
    stay, b, feature = cell
    row = (
        pl.read_parquet(cohort / "timeseries.parquet")
        .filter((pl.col("stay_id") == stay) & (pl.col("bin") == b))
        .row(0, named=True)
    )
    assert math.isclose(row[feature], EXPECTED_CELLS[cell], rel_tol=1e-6), rule
    assert row[f"{feature}_mask"] == 1, rule


def test_excluded_events_leave_cells_unobserved(cohort: Path) -> None:
    ts = pl.read_parquet(cohort / "timeseries.parquet").filter(pl.col("stay_id") == 1001)
    by_bin = {r["bin"]: r for r in ts.iter_rows(named=True)}
    assert by_bin[1]["temperature_mask"] == 0  # 130 °F and 9 °C are outliers
    assert by_bin[0]["lactate_mask"] == 0  # '<0.5' has NULL valuenum
    assert by_bin[0]["chloride_mask"] == 0  # 9999 sentinel
    assert by_bin[0]["gcs_verbal_mask"] == 0  # 0 is outside [1, 5]
    assert by_bin[15]["vasopressor"] == 0  # lidocaine-epinephrine is not a vasopressor
    assert by_bin[5]["insulin"] == 0  # drug_type BASE excluded
    assert all(r["anticoagulant"] == 0 for b, r in by_bin.items() if b < 20)  # heparin flush


def test_static_columns_and_values(cohort: Path) -> None:
    static = pl.read_parquet(cohort / "static.parquet")
    assert static.columns == [
        "stay_id", "subject_id", "hadm_id", "intime", "los_hours", "age", "sex", "race_group",
        "admission_type", "insurance", "first_careunit", "anchor_year_group", "weight_kg",
    ]
    assert static["stay_id"].to_list() == list(EXPECTED_STAYS)
    assert static.schema["intime"] == pl.Datetime("us")
    rows = {r[0]: tuple(r[1:3]) + tuple(r[4:]) for r in static.iter_rows()}
    assert rows == EXPECTED_STATIC


def test_labels_icd9_and_icd10(cohort: Path) -> None:
    labels = pl.read_parquet(cohort / "labels.parquet")
    assert labels.columns == ["stay_id", "subject_id", *LABELS]
    assert all(labels.schema[name] == pl.Int8 for name in LABELS)
    got = {r["stay_id"]: {k: r[k] for k in LABELS} for r in labels.iter_rows(named=True)}
    assert got == EXPECTED_LABELS


def test_manifest_counts_features_and_prevalence(cohort: Path) -> None:
    manifest = json.loads((cohort / "manifest.json").read_text())
    assert manifest["command"] == "extract"
    assert manifest["counts"]["stays"] == 6 and manifest["counts"]["patients"] == 6
    assert manifest["n_bins"] == N_BINS and manifest["bin_hours"] == 2 and manifest["hours"] == 48
    assert [f["name"] for f in manifest["features"]] == [f.name for f in FEATURES]
    assert {f["group"] for f in manifest["features"]} == {"vitals", "labs", "urine", "meds"}
    assert len(manifest["features"]) >= 30
    hf = next(lab for lab in manifest["labels"] if lab["name"] == "heart_failure")
    assert hf == {"name": "heart_failure", "prevalence": round(4 / 6, 6), "positives": 4}
    assert Path(manifest["inputs"][0]["name"]).name == "patients.csv.gz"
    # what each column means, for the hospitals' schema check (mimic_etl/schema.py)
    assert manifest["definitions"] == definition_hashes()
    assert list(manifest["definitions"]["features"]) == [f.name for f in FEATURES]
