"""The real-data quirks the extract step must survive are all present in a small release."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import polars as pl
import pytest
from crypten_fl.mimic_etl.synth.schema import table_path
from helpers.synth import read, release

TS = "%Y-%m-%d %H:%M:%S"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return release(tmp_path_factory)


@pytest.fixture(scope="module")
def chart(root: Path) -> pl.DataFrame:
    return read(root, "chartevents").with_columns(
        pl.col("itemid", "stay_id").cast(pl.Int64), pl.col("valuenum").cast(pl.Float64),
        pl.col("charttime").str.to_datetime(TS))


@pytest.fixture(scope="module")
def labs(root: Path) -> pl.DataFrame:
    return read(root, "labevents").with_columns(
        pl.col("itemid", "subject_id").cast(pl.Int64), pl.col("valuenum").cast(pl.Float64),
        pl.col("charttime").str.to_datetime(TS))


@pytest.fixture(scope="module")
def stays(root: Path) -> pl.DataFrame:
    return read(root, "icustays").with_columns(
        pl.col("stay_id", "subject_id").cast(pl.Int64), pl.col("los").cast(pl.Float64),
        pl.col("intime", "outtime").str.to_datetime(TS))


def test_temperatures_in_fahrenheit_and_celsius(chart: pl.DataFrame) -> None:
    f = chart.filter(pl.col("itemid") == 223761)["valuenum"].drop_nulls()
    c = chart.filter(pl.col("itemid") == 223762)["valuenum"].drop_nulls()
    assert len(f) > len(c) > 0
    assert 97 < f.median() < 100 and 36 < c.median() < 38


def test_lab_text_values_have_null_valuenum(labs: pl.DataFrame) -> None:
    texts = labs.filter(pl.col("valuenum").is_null())
    for text in ("___", "ERROR", "<0.5"):
        assert texts.filter(pl.col("value") == text).height > 0, text
    numeric = labs.filter(pl.col("valuenum").is_not_null())
    assert (numeric["value"].cast(pl.Float64) == numeric["valuenum"]).all()


def test_chart_text_values_and_gcs_text_with_numbers(chart: pl.DataFrame) -> None:
    vitals = chart.filter(pl.col("itemid").is_in([220045, 220277, 220210, 223761, 223835]))
    assert set(vitals.filter(pl.col("valuenum").is_null())["value"]) == {"___", "ERROR"}
    verbal = chart.filter(pl.col("itemid") == 223900)
    assert "No Response-ETT" in set(verbal["value"])
    assert verbal["valuenum"].drop_nulls().is_between(1, 5).all()
    eye = chart.filter(pl.col("itemid") == 220739)
    spont = eye.filter(pl.col("value") == "Spontaneously")["valuenum"]
    assert len(spont) > 0 and (spont == 4).all()


def test_exact_duplicate_rows(chart: pl.DataFrame, root: Path) -> None:
    assert chart.is_duplicated().sum() > 0
    assert read(root, "outputevents").is_duplicated().sum() > 0


def test_values_beyond_valid_ranges(chart: pl.DataFrame, labs: pl.DataFrame) -> None:
    hr = chart.filter(pl.col("itemid") == 220045)["valuenum"]
    assert (hr > 300).any() or (hr == 0).any()
    assert (chart.filter(pl.col("itemid") == 220277)["valuenum"] > 100).any()
    assert (chart.filter(pl.col("itemid") == 223761)["valuenum"] > 120).any()
    assert (labs["valuenum"] >= 9999).any()


def test_events_before_intime_and_after_outtime(chart: pl.DataFrame, stays: pl.DataFrame) -> None:
    joined = chart.join(stays.select("stay_id", "intime", "outtime"), on="stay_id")
    assert (joined["charttime"] < joined["intime"]).sum() > 0
    assert (joined["charttime"] > joined["outtime"]).sum() > 0
    inside = joined.filter(pl.col("charttime").is_between(pl.col("intime"), pl.col("outtime")))
    assert inside.height > 0.95 * joined.height


def test_null_hadm_id_in_labevents_also_during_icu_stays(labs: pl.DataFrame,
                                                         stays: pl.DataFrame) -> None:
    null = labs.filter(pl.col("hadm_id").is_null())
    assert 0 < null.height < labs.height
    during = null.join(stays.select("subject_id", "intime", "outtime"), on="subject_id").filter(
        pl.col("charttime").is_between(pl.col("intime"), pl.col("outtime")))
    assert during.height > 0


def test_several_admissions_and_stays_per_patient(root: Path, stays: pl.DataFrame) -> None:
    per_patient = stays.group_by("subject_id").len()["len"]
    multi = (per_patient >= 2).mean()
    assert 0.1 < multi < 0.35
    adm = read(root, "admissions")
    assert (adm.group_by("subject_id").len()["len"] >= 2).any()
    assert stays["hadm_id"].is_duplicated().any()  # two stays in one admission
    without_icu = set(adm["hadm_id"]) - set(stays["hadm_id"])
    assert len(without_icu) > 0
    patients = read(root, "patients")
    assert patients.height > stays["subject_id"].n_unique()  # patients never in an ICU


def test_short_and_long_stays(stays: pl.DataFrame) -> None:
    hours = stays["los"] * 24
    assert (hours < 48).mean() > 0.2 and (hours > 96).mean() > 0.1
    assert (stays["outtime"] > stays["intime"]).all()


def test_free_text_with_commas_and_quotes_is_csv_quoted(root: Path) -> None:
    with gzip.open(table_path(root, "chartevents"), "rt", newline="") as fh:
        values = {row["value"] for row in csv.DictReader(fh)}
    assert 'Bed alarm on, "Fall risk" sign posted' in values
    assert "Sitting, chair" in values
    raw = gzip.decompress(table_path(root, "chartevents").read_bytes()).decode()
    assert '"Bed alarm on, ""Fall risk"" sign posted"' in raw
    drugs = set(read(root, "prescriptions")["prod_strength"])
    assert any("," in d for d in drugs)


def test_dates_are_shifted_into_2100_2200(root: Path, stays: pl.DataFrame) -> None:
    years = stays["intime"].dt.year()
    assert years.min() >= 2100 and years.max() <= 2200
    anchor = read(root, "patients")["anchor_year"].cast(pl.Int64)
    assert anchor.min() >= 2100 and anchor.max() <= 2200
