"""The synthetic release has exactly the MIMIC-IV layout, column names/order and value formats."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import polars as pl
import pytest
from crypten_fl.common.outdir import MARKER
from helpers.synth import header, read, release

# Column lists copied from shared/mimic-iv-reference.md (MIMIC-IV v2.2 == v3.1 columns).
EXPECTED: dict[str, list[str]] = {
    "hosp/patients": ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group",
                      "dod"],
    "hosp/admissions": ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
                        "admission_type", "admit_provider_id", "admission_location",
                        "discharge_location", "insurance", "language", "marital_status", "race",
                        "edregtime", "edouttime", "hospital_expire_flag"],
    "hosp/diagnoses_icd": ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
    "hosp/d_icd_diagnoses": ["icd_code", "icd_version", "long_title"],
    "hosp/labevents": ["labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid",
                       "order_provider_id", "charttime", "storetime", "value", "valuenum",
                       "valueuom", "ref_range_lower", "ref_range_upper", "flag", "priority",
                       "comments"],
    "hosp/d_labitems": ["itemid", "label", "fluid", "category"],
    "hosp/prescriptions": ["subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq",
                           "order_provider_id", "starttime", "stoptime", "drug_type", "drug",
                           "formulary_drug_cd", "gsn", "ndc", "prod_strength", "form_rx",
                           "dose_val_rx", "dose_unit_rx", "form_val_disp", "form_unit_disp",
                           "doses_per_24_hrs", "route"],
    "icu/icustays": ["subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit",
                     "intime", "outtime", "los"],
    "icu/chartevents": ["subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime",
                        "storetime", "itemid", "value", "valuenum", "valueuom", "warning"],
    "icu/d_items": ["itemid", "label", "abbreviation", "linksto", "category", "unitname",
                    "param_type", "lownormalvalue", "highnormalvalue"],
    "icu/outputevents": ["subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime",
                         "storetime", "itemid", "value", "valueuom"],
}
TIMESTAMP = re.compile(r"^21\d\d-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="module", params=["2.2", "3.1"])
def root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return release(tmp_path_factory, version=request.param)


def test_layout_is_the_release_layout(root: Path) -> None:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    # the release's files, its summary and the marker of a crypten-fl output (a hidden file)
    expected = sorted([*(f"{name}.csv.gz" for name in EXPECTED), "synth_summary.json", MARKER])
    assert files == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_columns_in_order(root: Path, name: str) -> None:
    folder, table = name.split("/")
    assert header(root, table) == EXPECTED[name]
    assert (root / folder / f"{table}.csv.gz").exists()


def test_anchor_year_groups_follow_the_version(root: Path) -> None:
    groups = set(read(root, "patients")["anchor_year_group"])
    expected = {"2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019"}
    assert groups - {"2020 - 2022"} == expected
    version = json.loads((root / "synth_summary.json").read_text())["version"]
    assert ("2020 - 2022" in groups) == (version == "3.1")


def test_timestamps_dates_and_nulls_are_formatted_like_mimic(root: Path) -> None:
    adm = read(root, "admissions")
    for col in ("admittime", "dischtime"):
        assert adm[col].str.contains(TIMESTAMP.pattern).all()
    assert adm["deathtime"].null_count() > 0  # empty field = NULL
    dod = read(root, "patients")["dod"].drop_nulls()
    assert dod.str.contains(r"^21\d\d-\d\d-\d\d$").all()
    chart = read(root, "chartevents")
    assert chart["charttime"].str.contains(TIMESTAMP.pattern).all()


def test_gzip_header_has_no_timestamp(root: Path) -> None:
    for path in root.rglob("*.csv.gz"):
        head = path.read_bytes()[:10]
        assert head[:3] == b"\x1f\x8b\x08" and head[4:8] == b"\0\0\0\0", path


def test_dictionaries_cover_every_code_and_item_used(root: Path) -> None:
    codes = read(root, "diagnoses_icd").select("icd_code", "icd_version").unique()
    known = read(root, "d_icd_diagnoses").select("icd_code", "icd_version")
    assert codes.join(known, on=["icd_code", "icd_version"], how="anti").height == 0
    for events, dictionary in (("chartevents", "d_items"), ("outputevents", "d_items"),
                               ("labevents", "d_labitems")):
        used = set(read(root, events)["itemid"])
        assert used <= set(read(root, dictionary)["itemid"]), events
    d_items = read(root, "d_items")
    assert set(d_items["linksto"]) == {"chartevents", "outputevents"}


def test_icd_codes_have_no_dots_and_valid_versions(root: Path) -> None:
    dx = read(root, "diagnoses_icd")
    assert not dx["icd_code"].str.contains(r"\.").any()
    assert set(dx["icd_version"]) == {"9", "10"}
    assert dx["icd_code"].str.len_chars().max() <= 7


def test_ids_are_unique_and_keys_consistent(root: Path) -> None:
    patients, adm, stays = (read(root, t) for t in ("patients", "admissions", "icustays"))
    assert patients["subject_id"].is_unique().all()
    assert adm["hadm_id"].is_unique().all() and stays["stay_id"].is_unique().all()
    assert set(adm["subject_id"]) <= set(patients["subject_id"])
    pairs = stays.select("subject_id", "hadm_id").join(
        adm.select("subject_id", "hadm_id"), on=["subject_id", "hadm_id"], how="anti")
    assert pairs.height == 0
    labs = read(root, "labevents")
    assert labs["labevent_id"].cast(pl.Int64).is_unique().all()


def test_real_itemids_and_drug_names_are_present(root: Path) -> None:
    chart_items = set(read(root, "chartevents")["itemid"].cast(pl.Int64))
    assert {220045, 220179, 220180, 220181, 220210, 220277, 223761, 220739, 223900, 223901,
            226512} <= chart_items
    lab_items = set(read(root, "labevents")["itemid"].cast(pl.Int64))
    assert {50912, 51006, 50983, 50971, 50902, 50882, 50868, 51301, 51265, 50931, 50813,
            50885, 50862, 51237, 51274, 51275, 50861, 50878, 51221, 51222, 50893} <= lab_items
    assert {226559, 226560} <= set(read(root, "outputevents")["itemid"].cast(pl.Int64))
    drugs = " ".join(set(read(root, "prescriptions")["drug"])).lower()
    for name in ("norepinephrine", "vancomycin", "piperacillin-tazobactam", "insulin",
                 "heparin", "furosemide"):
        assert name in drugs


def test_summary_json_matches_the_files(root: Path) -> None:
    summary = json.loads((root / "synth_summary.json").read_text())
    for table, rows in summary["rows"].items():
        path = next(root.rglob(f"{table}.csv.gz"))
        with gzip.open(path, "rt") as fh:
            lines = sum(1 for _ in fh)
        assert rows == lines - 1  # header + one line per row (no embedded newlines)
