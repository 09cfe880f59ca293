"""MIMIC-IV release layout: which folder each table lives in and its exact column order.

Source: MIMIC-IV v2.2 / v3.1 documentation (mimic.mit.edu), summarised in
shared/mimic-iv-reference.md. v3.0/v3.1 keep the v2.2 columns; the only difference the
generator reproduces is the extra ``anchor_year_group`` '2020 - 2022' in v3.x.
"""

from __future__ import annotations

from pathlib import Path

VERSIONS: tuple[str, ...] = ("2.2", "3.1")

# anchor_year_group values per release (MIMIC-IV patients table).
ANCHOR_YEAR_GROUPS: dict[str, tuple[str, ...]] = {
    "2.2": ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019"),
    "3.1": ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022"),
}

# table -> (module folder, ordered column names)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "patients": (
        "hosp",
        ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"),
    ),
    "admissions": (
        "hosp",
        (
            "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
            "admit_provider_id", "admission_location", "discharge_location", "insurance",
            "language", "marital_status", "race", "edregtime", "edouttime",
            "hospital_expire_flag",
        ),
    ),
    "diagnoses_icd": ("hosp", ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")),
    "d_icd_diagnoses": ("hosp", ("icd_code", "icd_version", "long_title")),
    "labevents": (
        "hosp",
        (
            "labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid",
            "order_provider_id", "charttime", "storetime", "value", "valuenum", "valueuom",
            "ref_range_lower", "ref_range_upper", "flag", "priority", "comments",
        ),
    ),
    "d_labitems": ("hosp", ("itemid", "label", "fluid", "category")),
    "prescriptions": (
        "hosp",
        (
            "subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq", "order_provider_id",
            "starttime", "stoptime", "drug_type", "drug", "formulary_drug_cd", "gsn", "ndc",
            "prod_strength", "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
            "form_unit_disp", "doses_per_24_hrs", "route",
        ),
    ),
    "icustays": (
        "icu",
        (
            "subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime",
            "outtime", "los",
        ),
    ),
    "chartevents": (
        "icu",
        (
            "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime",
            "itemid", "value", "valuenum", "valueuom", "warning",
        ),
    ),
    "d_items": (
        "icu",
        (
            "itemid", "label", "abbreviation", "linksto", "category", "unitname", "param_type",
            "lownormalvalue", "highnormalvalue",
        ),
    ),
    "outputevents": (
        "icu",
        (
            "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime",
            "itemid", "value", "valueuom",
        ),
    ),
}


def columns(table: str, version: str = "3.1") -> tuple[str, ...]:
    """Ordered column names of ``table`` (identical in v2.2 and v3.1)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown MIMIC-IV version {version!r}")
    return TABLES[table][1]


def table_path(root: Path, table: str) -> Path:
    """Where ``table`` lives in a release: ``root/<hosp|icu>/<table>.csv.gz``."""
    return Path(root) / TABLES[table][0] / f"{table}.csv.gz"
