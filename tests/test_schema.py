"""Hospital schemas: what the fingerprint covers, and the messages that name what differs."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from crypten_fl import sql
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.extract.definitions import (
    definition_hashes,
    mapping_hash,
    source_definitions,
)
from crypten_fl.mimic_etl.partition import partition
from crypten_fl.mimic_etl.schema import (
    check_agreement,
    cohort_extras,
    describe,
    differences,
    fingerprint,
    manifest_schema,
)
from helpers.cohort_fixture import random_cohort

MANIFEST: dict[str, Any] = {
    "features": [{"name": "heart_rate", "unit": "bpm", "group": "vitals", "source": "x"},
                 {"name": "albumin", "unit": "g/dL", "group": "labs", "source": "y"},
                 {"name": "lactate", "unit": "mmol/L", "group": "labs", "source": "z"}],
    "labels": ["sepsis", "aki"],
    "static": ["age", "sex"],
    "n_bins": 24, "bin_hours": 2, "key": "str(stay_id)", "groups": None, "label_party": True,
    "counts": {"train": 10}, "prevalence": {"sepsis": 0.5},
}
COHORT = {"definitions": {"features": {"heart_rate": "h1", "albumin": "a1", "lactate": "l1"},
                          "labels": {"sepsis": "s1", "aki": "k1"}, "sql": "q1"},
          "parameters": {"min_age": 18, "min_los_hours": None, "hours": 48}, "hours": 48}


def site(**changes: Any) -> dict[str, Any]:
    """The schema description of MANIFEST with ``changes`` to its fields."""
    return describe({**MANIFEST, **changes}, cohort_extras(COHORT))


def test_the_description_holds_definitions_not_data_and_its_hash_is_stable() -> None:
    d = site()
    assert d == {
        "version": 1,
        "features": [{"name": "heart_rate", "unit": "bpm", "group": "vitals", "definition": "h1"},
                     {"name": "albumin", "unit": "g/dL", "group": "labs", "definition": "a1"},
                     {"name": "lactate", "unit": "mmol/L", "group": "labs",
                      "definition": "l1"}],
        "labels": [{"name": "sepsis", "definition": "s1"}, {"name": "aki", "definition": "k1"}],
        "static": ["age", "sex"], "n_bins": 24, "bin_hours": 2.0, "hours": 48.0,
        "extraction": {"min_age": 18, "min_los_hours": None, "sql": "q1"},
        "record_key": "str(stay_id)", "groups": None, "label_party": True,
    }
    # counts and prevalence are data, not schema: they do not change the fingerprint
    assert fingerprint(site(counts={"train": 99}, prevalence={})) == fingerprint(d)
    assert fingerprint(site(bin_hours=2.0)) == fingerprint(d)  # 2 and 2.0 are one grid
    assert fingerprint(site(n_bins=12)) != fingerprint(d)
    # a written manifest is described by its current fields plus the stored definitions
    written = {**MANIFEST, "schema": d, "schema_sha256": fingerprint(d)}
    assert manifest_schema(written) == d
    edited = {**written, "features": MANIFEST["features"][:1]}
    assert [f["name"] for f in manifest_schema(edited)["features"]] == ["heart_rate"]
    assert manifest_schema(MANIFEST)["features"][0]["definition"] is None  # no schema stored


def test_each_difference_is_named_from_the_differing_site() -> None:
    ref = site()
    no_albumin = [MANIFEST["features"][0], MANIFEST["features"][2]]
    cases = {
        "feature list differs: albumin missing": site(features=no_albumin),
        "feature list in another order (position 2: lactate, hospital_0 has albumin)":
            site(features=[MANIFEST["features"][i] for i in (0, 2, 1)]),
        "feature lactate: unit mg/dL, hospital_0 has mmol/L":
            site(features=[*MANIFEST["features"][:2], {**MANIFEST["features"][2],
                                                       "unit": "mg/dL"}]),
        "label list differs: aki missing; uti not in hospital_0's":
            site(labels=["sepsis", "uti"]),
        "static column list differs: sex missing": site(static=["age"]),
        "time grid 12 bins of 4.0 h over 48.0 h, hospital_0 has 24 bins of 2.0 h over 48.0 h":
            site(n_bins=12, bin_hours=4),
    }
    for message, other in cases.items():
        assert differences(ref, other, "hospital_0") == [message]
    changed = copy.deepcopy(COHORT)
    changed["definitions"]["labels"]["sepsis"] = "s2"
    changed["definitions"]["features"]["albumin"] = "a2"
    changed["parameters"]["min_age"] = 16
    other = describe(MANIFEST, cohort_extras(changed))
    assert differences(ref, other, "hospital_0") == [
        "extraction --min-age 16, hospital_0 has 18",
        "feature albumin: definition (itemids, valid range or unit conversion) differs from "
        "hospital_0's",
        "label sepsis: ICD definition differs from hospital_0's",
    ]


def test_the_majority_is_the_reference_and_every_differing_site_is_named() -> None:
    no_albumin = site(features=[MANIFEST["features"][0], MANIFEST["features"][2]])
    check_agreement({"hospital_0": site(), "hospital_1": site()}, vertical=False)
    with pytest.raises(UserError) as err:
        check_agreement({"hospital_0": site(), "hospital_1": site(),
                         "hospital_2": no_albumin}, vertical=False)
    assert str(err.value) == ("the hospitals' data schemas differ (compared before the first "
                              "round): hospital_2: feature list differs: albumin missing")
    with pytest.raises(UserError) as err:  # hospital_0 is the odd one out: it is named
        check_agreement({"hospital_0": no_albumin, "hospital_1": site(),
                         "hospital_2": site(), "hospital_3": site(n_bins=4)}, vertical=False)
    assert str(err.value).endswith(
        "hospital_0: feature list differs: albumin missing | hospital_3: time grid 4 bins of "
        "2.0 h over 48.0 h, hospital_1 has 24 bins of 2.0 h over 48.0 h")
    with pytest.raises(UserError) as err:  # a tie: the first hospital's description wins
        check_agreement({"hospital_0": no_albumin, "hospital_1": site(),
                         "hospital_2": no_albumin, "hospital_3": site()}, vertical=False)
    assert str(err.value).endswith(
        "hospital_1: feature list differs: albumin not in hospital_0's | hospital_3: feature "
        "list differs: albumin not in hospital_0's")


def test_vertical_parties_compare_the_shared_fields_and_their_feature_groups(tmp_path) -> None:
    random_cohort(tmp_path / "cohort", n_patients=30, seed=2)
    partition(tmp_path / "cohort", tmp_path / "fed", hospitals=None, vertical=True,
              feature_groups="vitals;labs;meds,urine,static", label_party=1)
    parties = {f"hospital_{k}": manifest_schema(json.loads(
        (tmp_path / "fed" / f"hospital_{k}" / "manifest.json").read_text())) for k in range(3)}
    assert [p["groups"] for p in parties.values()] == [["vitals"], ["labs"],
                                                         ["meds", "urine", "static"]]
    check_agreement(parties, vertical=True)  # other features per party is the point
    clash = copy.deepcopy(parties)
    clash["hospital_2"]["groups"] = ["meds", "urine", "static", "labs"]
    clash["hospital_0"]["label_party"] = True
    with pytest.raises(UserError) as err:
        check_agreement(clash, vertical=True)
    assert str(err.value).endswith(
        "hospital_2: feature group labs also held by hospital_1 | 2 parties hold the labels "
        "(hospital_0, hospital_1), expected exactly one")
    clash = copy.deepcopy(parties)
    clash["hospital_1"]["n_bins"] = 8
    with pytest.raises(UserError, match="hospital_1: time grid 8 bins"):
        check_agreement(clash, vertical=True)


def test_definition_hashes_follow_the_csv_definitions_not_their_descriptions(tmp_path) -> None:
    files = {name: Path(shutil.copy(path, tmp_path / path.name))
             for name, path in sql.DATA_FILES.items()}
    shutil.copytree(sql.SQL_DIR, tmp_path / "sql", ignore=shutil.ignore_patterns("*.csv", "_*"))

    def hashes() -> dict[str, Any]:
        return definition_hashes(files["features_csv"], files["labels_csv"],
                                 files["drug_classes_csv"], tmp_path / "sql")

    base = hashes()
    assert base == definition_hashes()
    assert set(base["labels"]) == {"heart_failure", "respiratory_failure", "sepsis", "aki",
                                   "malnutrition", "pneumonia", "uti", "diabetes",
                                   "hypertension", "ckd", "liver_disease", "neurological"}

    def edit(name: str, key: str, column: str, value: str) -> None:
        with files[name].open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        row = next(r for r in rows if r[key] in ("heart_rate", "sepsis"))
        row[column] = value
        with files[name].open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    edit("features_csv", "feature", "reference", "a new citation")  # description only
    assert hashes() == base
    edit("features_csv", "feature", "valid_range", "(0, 250)")
    assert hashes()["features"]["heart_rate"] != base["features"]["heart_rate"]
    assert {k: v for k, v in hashes()["features"].items() if k != "heart_rate"} == \
        {k: v for k, v in base["features"].items() if k != "heart_rate"}
    edit("labels_csv", "label", "icd10_prefixes", "A40")
    assert hashes()["labels"]["sepsis"] != base["labels"]["sepsis"]
    (tmp_path / "sql" / "vitals.sql").write_text("-- a comment\n"
                                                 + (sql.SQL_DIR / "vitals.sql").read_text())
    assert hashes()["sql"] == base["sql"]  # comments do not count, code does
    (tmp_path / "sql" / "vitals.sql").write_text((sql.SQL_DIR / "vitals.sql").read_text()
                                                 .replace("SELECT", "SELECT DISTINCT", 1))
    assert hashes()["sql"] != base["sql"]


def test_a_custom_meds_mapping_is_part_of_the_schema(tmp_path) -> None:
    """The default mapping is the MIMIC-IV codes, as the CSV path; a custom one is named."""
    default = sql.SQL_DIR / "meds"
    assert source_definitions(None) == {} and source_definitions(default) == {}
    mapping = Path(shutil.copytree(default, tmp_path / "mapping"))
    codes = mapping / "codes.csv"
    text = codes.read_text()
    codes.write_text(text.replace("birth; MEDS_BIRTH", "birth (a reworded description); "
                                  "MEDS_BIRTH"))
    assert source_definitions(mapping) == {}  # descriptions do not count
    codes.write_text(text.replace(",^ICU_ADMISSION//,", ",^ICU_IN//,"))
    custom = source_definitions(mapping)["meds_mapping"]
    assert len(custom) == 16 and custom == mapping_hash(mapping) != mapping_hash(default)
    codes.write_text(text)
    (mapping / "icustays.sql").write_text((default / "icustays.sql").read_text()
                                          .replace("SELECT", "SELECT DISTINCT", 1))
    assert source_definitions(mapping)["meds_mapping"] not in (custom, mapping_hash(default))

    with_mapping = copy.deepcopy(COHORT)
    with_mapping["definitions"]["meds_mapping"] = custom
    other = describe(MANIFEST, cohort_extras(with_mapping))
    assert other["extraction"]["meds_mapping"] == custom
    assert differences(site(), other, "hospital_0") == [
        f"MEDS mapping custom {custom}, hospital_0 uses the MIMIC-IV codes (CSV or the default "
        "mapping)"]
    assert differences(other, site(), "hospital_1") == [
        f"MEDS mapping the MIMIC-IV codes (CSV or the default mapping), hospital_1 uses custom "
        f"{custom}"]
    check_agreement({"hospital_0": other, "hospital_1": copy.deepcopy(other)}, vertical=False)
    with pytest.raises(UserError, match=f"hospital_2: MEDS mapping custom {custom}"):
        check_agreement({"hospital_0": site(), "hospital_1": site(), "hospital_2": other},
                        vertical=False)


def test_a_cohort_without_definitions_and_odd_values_are_compared_too() -> None:
    old = describe(MANIFEST)  # a cohort written before definitions were recorded
    definition = "definition (itemids, valid range or unit conversion) differs from hospital_0's"
    assert differences(site(), old, "hospital_0") == [
        "time grid 24 bins of 2.0 h over None h, hospital_0 has 24 bins of 2.0 h over 48.0 h",
        "extraction settings not recorded (an older or hand-made cohort), hospital_0's are",
        *(f"feature {name}: {definition}" for name in ("heart_rate", "albumin", "lactate")),
        "label sepsis: ICD definition differs from hospital_0's",
        "label aki: ICD definition differs from hospital_0's"]
    assert "extraction settings recorded, hospital_0's not (an older or hand-made cohort)" in \
        differences(old, site(), "hospital_0")
    odd = site(bin_hours=float("nan"), features=[{"name": "x", "unit": float("inf")}])
    assert fingerprint(odd) == fingerprint(copy.deepcopy(odd))  # hashable, not an exception
    with pytest.raises(UserError, match=r"hospital_1: time grid 24 bins of nan h"):
        check_agreement({"hospital_0": site(), "hospital_1": odd}, vertical=False)
