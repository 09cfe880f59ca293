"""A tiny hand-built MIMIC-IV download with exactly known extraction results.

Nine patients, eleven ICU stays and a few dozen events, each placed to exercise one rule of
`crypten-fl extract` (window edges, outliers, °F, duplicates, NULL-hadm labs, text values,
irrigant urine, medication intervals, ICD-9/10 prefixes, race groups, every cohort step).
``write_mimic`` lays it out as release v1.0 (core/, ``ethnicity``, no provider/caregiver
columns), v2.2 or v3.1, as .csv.gz or .csv. The ``EXPECTED_*`` constants are the outputs for
``hours=48, bin_hours=2, min_age=18`` (no LOS minimum).
"""

from __future__ import annotations

import csv
import gzip
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

RELEASES = ("v1.0", "v2.2", "v3.1")

_V22: dict[str, list[str]] = {
    "patients": ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"],
    "admissions": [
        "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
        "admit_provider_id", "admission_location", "discharge_location", "insurance", "language",
        "marital_status", "race", "edregtime", "edouttime", "hospital_expire_flag",
    ],
    "icustays": [
        "subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime",
        "outtime", "los",
    ],
    "diagnoses_icd": ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
    "labevents": [
        "labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "order_provider_id",
        "charttime", "storetime", "value", "valuenum", "valueuom", "ref_range_lower",
        "ref_range_upper", "flag", "priority", "comments",
    ],
    "prescriptions": [
        "subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq", "order_provider_id",
        "starttime", "stoptime", "drug_type", "drug", "formulary_drug_cd", "gsn", "ndc",
        "prod_strength", "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
        "form_unit_disp", "doses_per_24_hrs", "route",
    ],
    "chartevents": [
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid",
        "value", "valuenum", "valueuom", "warning",
    ],
    "outputevents": [
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid",
        "value", "valueuom",
    ],
    "d_items": ["itemid", "label", "abbreviation", "linksto", "category", "unitname",
                "param_type", "lownormalvalue", "highnormalvalue"],
}
_V1_DROPPED = {"admit_provider_id", "order_provider_id", "caregiver_id", "poe_id", "poe_seq"}
_FOLDER = {
    "patients": "hosp", "admissions": "hosp", "diagnoses_icd": "hosp", "labevents": "hosp",
    "prescriptions": "hosp", "icustays": "icu", "chartevents": "icu", "outputevents": "icu",
    "d_items": "icu",
}

INTIME = {
    1001: "2150-03-01 10:00:00", 2001: "2162-05-10 12:00:00", 2002: "2162-05-15 09:00:00",
    2003: "2165-01-01 03:00:00", 3001: "2141-02-01 02:00:00", 4001: "2130-07-07 10:00:00",
    5001: "2121-01-01 01:00:00", 6001: "2180-01-01 02:00:00", 7001: "2190-01-01 02:00:00",
    8001: "2170-01-01 02:00:00", 9001: "2150-09-01 02:00:00",
}


def at(stay_id: int, hours: float = 0.0, minutes: float = 0.0) -> str:
    """The timestamp ``hours`` h + ``minutes`` min after the stay's intime, MIMIC format."""
    base = datetime.fromisoformat(INTIME[stay_id])
    return (base + timedelta(hours=hours, minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


# (stay_id, subject_id, hadm_id, first_careunit, los_hours)
_STAYS = [
    (1001, 1, 101, "Medical Intensive Care Unit (MICU)", 72),
    (2001, 2, 201, "Coronary Care Unit (CCU)", 5),
    (2002, 2, 201, "Coronary Care Unit (CCU)", 30),
    (2003, 2, 202, "Medical Intensive Care Unit (MICU)", 40),
    (3001, 3, 301, "Medical Intensive Care Unit (MICU)", 48),
    (4001, 4, 401, "Surgical Intensive Care Unit (SICU)", 30),
    (5001, 5, 501, "Cardiac Vascular Intensive Care Unit (CVICU)", 48),
    (6001, 6, 601, "Trauma SICU (TSICU)", 48),
    (7001, 7, 701, "Neuro Intermediate", 48),
    (8001, 8, 801, "Medical Intensive Care Unit (MICU)", 48),  # subject 8 not in patients
    (9001, 9, 999, "Medical Intensive Care Unit (MICU)", 48),  # hadm 999 not in admissions
]
# (subject_id, gender, anchor_age, anchor_year, anchor_year_group)
_PATIENTS = [
    (1, "F", 60, 2150, "2011 - 2013"), (2, "M", 45, 2160, "2017 - 2019"),
    (3, "F", 16, 2140, "2014 - 2016"), (4, "M", 91, 2130, "2008 - 2010"),
    (5, "F", 70, 2120, "2011 - 2013"), (6, "M", 30, 2180, "2014 - 2016"),
    (7, "F", 50, 2190, "2017 - 2019"), (9, "F", 40, 2150, "2011 - 2013"),
]
# (subject_id, hadm_id, admittime, admission_type, insurance, race)
_ADMISSIONS = [
    (1, 101, "2150-03-01 08:00:00", "URGENT", "Other", "WHITE - RUSSIAN"),
    (1, 102, "2150-06-01 08:00:00", "ELECTIVE", "Other", "WHITE"),  # no ICU stay
    (2, 201, "2162-05-10 08:00:00", "EW EMER.", "Medicare", "BLACK/AFRICAN AMERICAN"),
    (2, 202, "2165-01-01 00:00:00", "EW EMER.", "Medicare", "BLACK/AFRICAN AMERICAN"),
    (3, 301, "2141-02-01 00:00:00", "URGENT", "Medicaid", "WHITE"),
    (4, 401, "2130-07-07 07:00:00", "ELECTIVE", "Medicaid", "HISPANIC/LATINO - PUERTO RICAN"),
    (5, 501, "2121-01-01 00:00:00", "URGENT", "Other", "ASIAN - CHINESE"),
    (6, 601, "2180-01-01 00:00:00", "URGENT", "Other", "MULTIPLE RACE/ETHNICITY"),
    (7, 701, "2190-01-01 00:00:00", "URGENT", "Other", "PATIENT DECLINED TO ANSWER"),
    (8, 801, "2170-01-01 00:00:00", "URGENT", "Other", "WHITE"),
]
# (stay_id, hours after intime, itemid, value, valuenum) — valuenum None = empty field
_CHART: list[tuple[int, float, int, str, Any]] = [
    (1001, -1 / 60, 220045, "200", 200),  # before intime: excluded
    (1001, 0, 220045, "80", 80),
    (1001, 0.5, 220045, "90", 90),
    (1001, 0.5, 220045, "90", 90),  # duplicate charting: counted once -> bin 0 mean 90
    (1001, 119 / 60, 220045, "100", 100),
    (1001, 2, 220045, "70", 70),
    (1001, 2.5, 220045, "350", 350),  # outside (0, 300): removed
    (1001, 2 + 40 / 60, 220045, "___", None),  # text, NULL valuenum: ignored
    (1001, 2 + 50 / 60, 220045, "abc", "abc"),  # text in the valuenum column: ignored
    (1001, 47 + 59 / 60, 220045, "65", 65),  # last bin
    (1001, 48, 220045, "60", 60),  # window end is exclusive: excluded
    (1001, 0, 220179, "120", 120),  # NIBP and arterial, same time and value: once
    (1001, 0, 220050, "120", 120),
    (1001, 1, 225309, "150", 150),  # -> sbp bin 0 = 135
    (1001, 0, 220180, "60", 60),
    (1001, 0, 220181, "80", 80),  # same time, different values: both count -> 81
    (1001, 0, 220052, "82", 82),
    (1001, 0, 223761, "98.6", 98.6),  # °F -> 37 °C
    (1001, 1, 223762, "38", 38),  # -> temperature bin 0 = 37.5
    (1001, 2, 223761, "130", 130),  # outside (70, 120) °F: removed
    (1001, 2, 223762, "9", 9),  # outside (10, 50) °C: removed
    (1001, 0, 223835, "0.5", 0.5),  # FiO2 fraction -> 50 %
    (1001, 4, 223835, "40", 40),
    (1001, 4.5, 223835, "5", 5),  # ambiguous (1, 20): dropped
    (1001, 4.75, 223835, "0.1", 0.1),  # outside (0.2, 100]: removed
    (1001, 0, 220277, "100", 100),  # SpO2 100 is inside (0, 100]
    (1001, 1 / 6, 220277, "101", 101),  # removed
    (1001, 0, 223900, "0", 0),  # GCS verbal 0 outside [1, 5]: removed
    (1001, 0, 220739, "4", 4),
    (1001, 0, 223901, "6", 6),
    (1001, 0, 220210, "18", 18),  # two resp-rate itemids, same time and value: once
    (1001, 0, 224690, "18", 18),
    (1001, 1, 220210, "21", 21),  # -> resp_rate bin 0 = 19.5
    (1001, 6, 225664, "110", 110),
    (1001, 0.25, 226512, "70.5", 70.5),  # admission weight -> static weight_kg
    (1001, 10, 224639, "72", 72),
    (1001, 1, 227969, "Some, \"quoted\" text", None),  # unrelated itemid
    (2001, 0, 220045, "100", 100),
    (2001, 4, 220052, "65", 65),
    (2001, 10, 220045, "90", 90),  # after outtime (5 h) but inside the 48 h window: kept
    (2002, 0, 220045, "88", 88),  # second stay of admission 201: not in the cohort
    (3001, 0, 220045, "77", 77),  # age 17: not in the cohort
    (5001, 0, 220045, "75", 75),
    (6001, 0, 220045, "80", 80),
    (7001, 0, 220045, "80", 80),
    (8001, 0, 220045, "80", 80),
    (9001, 0, 220045, "80", 80),
]
# (subject_id, hadm_id or None, hours after the stay's intime, stay for the clock, itemid,
#  value, valuenum)
_LABS: list[tuple[int, int | None, float, int, int, str, Any]] = [
    (1, 101, 1, 1001, 50912, "1.2", 1.2),
    (1, None, 3, 1001, 50912, "1.4", 1.4),  # NULL hadm_id, matched by subject and time
    (1, 102, 1.5, 1001, 50912, "5.0", 5.0),  # another admission's hadm_id: excluded
    (1, None, -2, 1001, 50912, "1.0", 1.0),  # before intime: excluded
    (1, 101, 1, 1001, 50813, "<0.5", None),  # censored text: ignored
    (1, 101, 1, 1001, 50983, "250", 250),  # sodium outside (0, 200]: removed
    (1, 101, 1, 1001, 50983, "140", 140),
    (1, 101, 1, 1001, 51301, "11.2", 11.2),
    (1, 101, 1, 1001, 51301, "11.2", 11.2),  # duplicate result
    (1, 101, 1, 1001, 50902, "9999", 9999),  # sentinel: above MIMIC-Extract's 200 mEq/L
    (4, None, 3, 4001, 50912, "2.0", 2.0),
    (4, None, 5, 4001, 50971, "4.1", 4.1),
    (4, None, -1, 4001, 50912, "3.0", 3.0),  # before intime
    (4, None, 50, 4001, 50912, "3.0", 3.0),  # after the window
]
# (stay_id, hours after intime, itemid, value)
_OUTPUT: list[tuple[int, float, int, str]] = [
    (1001, 0, 226559, "100"),
    (1001, 0, 226559, "100"),  # duplicate: counted once
    (1001, 1, 226560, "50"),  # -> bin 0 = 150
    (1001, 2, 227488, "30"),  # irrigant in: subtracted
    (1001, 2, 227489, "80"),  # -> bin 1 = 50
    (1001, 3, 226559, "-10"),  # negative volume: removed
    (1001, 4, 226559, "0"),  # observed zero
    (1001, 5, 226999, "500"),  # not a urine itemid
]
# (hadm_id, clock stay, start h, stop h or None, drug_type, drug, route)
_RX: list[tuple[int, int, float, float | None, str, str, str]] = [
    (101, 1001, -1, 4.5, "MAIN", "Norepinephrine", "IV DRIP"),  # bins 0-2
    (101, 1001, 24, None, "MAIN", "Vancomycin", "IV"),  # no stoptime: bin 12 only
    (101, 1001, 0, 48, "MAIN", 'Heparin, "Flush" 10 units/mL', "IV"),  # flush: excluded
    (101, 1001, 47, 72, "MAIN", "Insulin", "SC"),  # bin 23
    (101, 1001, 10, 11, "BASE", "Insulin", "IV"),  # base solution: excluded
    (101, 1001, 0, 10, "MAIN", "Neomycin-Polymyxin-Bacitracin", "TP"),  # topical: excluded
    (101, 1001, 30, 31, "MAIN", "Lidocaine-Epinephrine 1%", "SC"),  # local anaesthetic
    (101, 1001, 6, 6, "MAIN", "Furosemide", "IV"),  # zero duration: bin 3 only
    (101, 1001, 8, 10, "MAIN", "Propofol", "IV DRIP"),  # ends at bin 5 start: bin 4 only
    (101, 1001, -5, -1, "MAIN", "Fentanyl Citrate", "IV"),  # before intime: excluded
    (101, 1001, 40, 100, "MAIN", "Heparin", "SC"),  # bins 20-23
    (202, 2003, 1, 5, "MAIN", "Vancomycin", "IV"),  # stay 2003 has only this: no observation
]
_DIAGNOSES: list[tuple[int, str, int]] = [
    (101, "4280", 9), (101, "5849", 9), (101, "4019", 9), (101, "25000", 9), (101, "42731", 9),
    *[(201, code, 10) for code in (
        "I509", "J9601", "A419", "N179", "E43", "J189", "N390", "E119", "I10", "N184", "K7030",
        "G40909",
    )],
    (501, "4255", 9), (501, "486", 9), (501, "5723", 9), (501, "34590", 9),
    (601, "I132", 10), (601, "K760", 10), (601, "G35", 10), (601, "R64", 10),
    (701, "4253", 9), (701, "5849", 10), (701, "E119", 9),  # near miss, wrong versions
]
_STAY_OF = {s[0]: s for s in _STAYS}


def _rows() -> dict[str, list[dict[str, Any]]]:
    """Every table's rows as dicts keyed by v2.2 column name (absent = empty field)."""
    stays = [
        {"subject_id": subj, "hadm_id": hadm, "stay_id": stay, "first_careunit": unit,
         "last_careunit": unit, "intime": at(stay), "outtime": at(stay, los),
         "los": round(los / 24, 4)}
        for stay, subj, hadm, unit, los in _STAYS
    ]
    patients = [
        {"subject_id": s, "gender": g, "anchor_age": a, "anchor_year": y, "anchor_year_group": grp}
        for s, g, a, y, grp in _PATIENTS
    ]
    admissions = [
        {"subject_id": s, "hadm_id": h, "admittime": t, "dischtime": t, "admission_type": kind,
         "admission_location": "EMERGENCY ROOM", "discharge_location": "HOME, WITH \"SERVICES\"",
         "insurance": ins, "language": "ENGLISH", "race": race, "hospital_expire_flag": 0}
        for s, h, t, kind, ins, race in _ADMISSIONS
    ]
    chart = []
    for stay, hours, itemid, value, valuenum in _CHART:
        _, subj, hadm, _, _ = _STAY_OF[stay]
        chart.append({
            "subject_id": subj, "hadm_id": hadm, "stay_id": stay, "caregiver_id": len(chart),
            "charttime": at(stay, hours), "storetime": at(stay, hours, len(chart)),
            "itemid": itemid, "value": value, "valuenum": valuenum, "valueuom": "", "warning": 0,
        })
    labs = [
        {"labevent_id": i, "subject_id": subj, "hadm_id": hadm, "specimen_id": i,
         "itemid": itemid, "charttime": at(clock, hours), "storetime": at(clock, hours, 30),
         "value": value, "valuenum": valuenum, "valueuom": "mg/dL", "priority": "STAT",
         "comments": 'Verified, "see note"\nsecond line' if i == 0 else ""}
        for i, (subj, hadm, hours, clock, itemid, value, valuenum) in enumerate(_LABS)
    ]
    output = [
        {"subject_id": _STAY_OF[stay][1], "hadm_id": _STAY_OF[stay][2], "stay_id": stay,
         "caregiver_id": 1, "charttime": at(stay, hours), "storetime": at(stay, hours, i),
         "itemid": itemid, "value": value, "valueuom": "ml"}
        for i, (stay, hours, itemid, value) in enumerate(_OUTPUT)
    ]
    rx = [
        {"subject_id": _STAY_OF[clock][1], "hadm_id": hadm, "pharmacy_id": i,
         "starttime": at(clock, start), "stoptime": "" if stop is None else at(clock, stop),
         "drug_type": kind, "drug": drug, "route": route, "dose_val_rx": "1,000"}
        for i, (hadm, clock, start, stop, kind, drug, route) in enumerate(_RX)
    ]
    diagnoses = [
        {"subject_id": next(a[0] for a in _ADMISSIONS if a[1] == hadm), "hadm_id": hadm,
         "seq_num": i + 1, "icd_code": code, "icd_version": version}
        for i, (hadm, code, version) in enumerate(_DIAGNOSES)
    ]
    d_items = [{"itemid": 220045, "label": "Heart Rate", "linksto": "chartevents"}]
    return {
        "patients": patients, "admissions": admissions, "icustays": stays,
        "diagnoses_icd": diagnoses, "labevents": labs, "prescriptions": rx,
        "chartevents": chart, "outputevents": output, "d_items": d_items,
    }


def columns(release: str, table: str) -> list[str]:
    """The header of ``table`` in ``release`` (v1.0: ethnicity, no provider/caregiver ids)."""
    names = _V22[table]
    if release == "v1.0":
        names = ["ethnicity" if n == "race" else n for n in names if n not in _V1_DROPPED]
    return names


def write_mimic(root: Path, release: str = "v3.1", compressed: bool = True) -> Path:
    """Write the fixture under ``root`` in ``release`` layout; returns ``root``.

    v1.0 keeps patients and admissions in ``core/`` as that release did.
    """
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}")
    for table, rows in _rows().items():
        folder = _FOLDER[table]
        if release == "v1.0" and table in ("patients", "admissions"):
            folder = "core"
        write_table(root / folder / f"{table}.csv{'.gz' if compressed else ''}",
                    columns(release, table), rows)
    return root


def write_table(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    """Write rows as a MIMIC CSV (gzip when the name ends in .gz); v1 ``ethnicity`` = ``race``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if (v := row.get("race" if c == "ethnicity" else c)) is None else v
                         for c in header])
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


LABELS = (
    "heart_failure", "respiratory_failure", "sepsis", "aki", "malnutrition", "pneumonia", "uti",
    "diabetes", "hypertension", "ckd", "liver_disease", "neurological",
)
EXPECTED_STAYS = (1001, 2001, 4001, 5001, 6001, 7001)
EXPECTED_FLOW = [
    ("all_stays", 11, 0), ("has_admission", 10, 1), ("has_patient", 9, 1), ("min_age", 8, 1),
    ("first_stay", 7, 1), ("min_los", 7, 0), ("has_observation", 6, 1),
]
# (stay, bin, feature) -> value, for every observed measured cell and every active medication flag;
# all other cells are NULL with mask 0 (measured) or 0 with mask 1 (medication flags).
EXPECTED_CELLS: dict[tuple[int, int, str], float] = {
    (1001, 0, "heart_rate"): 90.0, (1001, 1, "heart_rate"): 70.0, (1001, 23, "heart_rate"): 65.0,
    (1001, 0, "sbp"): 135.0, (1001, 0, "dbp"): 60.0, (1001, 0, "mbp"): 81.0,
    (1001, 0, "temperature"): 37.5, (1001, 0, "fio2"): 50.0, (1001, 2, "fio2"): 40.0,
    (1001, 0, "spo2"): 100.0, (1001, 0, "gcs_eye"): 4.0, (1001, 0, "gcs_motor"): 6.0,
    (1001, 0, "resp_rate"): 19.5, (1001, 3, "glucose_chart"): 110.0,
    (1001, 0, "weight"): 70.5, (1001, 5, "weight"): 72.0,
    (1001, 0, "creatinine"): 1.2, (1001, 1, "creatinine"): 1.4, (1001, 0, "sodium"): 140.0,
    (1001, 0, "wbc"): 11.2,
    (1001, 0, "urine_output"): 150.0, (1001, 1, "urine_output"): 50.0,
    (1001, 2, "urine_output"): 0.0,
    (1001, 0, "vasopressor"): 1.0, (1001, 1, "vasopressor"): 1.0, (1001, 2, "vasopressor"): 1.0,
    (1001, 12, "antibiotic"): 1.0, (1001, 23, "insulin"): 1.0, (1001, 3, "diuretic"): 1.0,
    (1001, 4, "sedative"): 1.0,
    **{(1001, b, "anticoagulant"): 1.0 for b in range(20, 24)},
    (2001, 0, "heart_rate"): 100.0, (2001, 2, "mbp"): 65.0, (2001, 5, "heart_rate"): 90.0,
    (4001, 1, "creatinine"): 2.0, (4001, 2, "potassium"): 4.1,
    (5001, 0, "heart_rate"): 75.0, (6001, 0, "heart_rate"): 80.0, (7001, 0, "heart_rate"): 80.0,
}
_L = dict.fromkeys(LABELS, 0)
EXPECTED_LABELS: dict[int, dict[str, int]] = {
    1001: {**_L, "heart_failure": 1, "aki": 1, "hypertension": 1, "diabetes": 1},
    2001: dict.fromkeys(LABELS, 1),
    4001: dict(_L),
    5001: {**_L, "heart_failure": 1, "pneumonia": 1, "liver_disease": 1, "neurological": 1},
    6001: {**_L, "heart_failure": 1, "hypertension": 1, "liver_disease": 1, "neurological": 1,
           "malnutrition": 1},
    7001: dict(_L),
}
# stay -> (subject, hadm, los_hours, age, sex, race_group, admission_type, insurance,
#          first_careunit, anchor_year_group, weight_kg)
EXPECTED_STATIC: dict[int, tuple[Any, ...]] = {
    1001: (1, 101, 72.0, 60.0, "F", "white", "URGENT", "Other",
           "Medical Intensive Care Unit (MICU)", "2011 - 2013", 70.5),
    2001: (2, 201, 5.0, 47.0, "M", "black", "EW EMER.", "Medicare", "Coronary Care Unit (CCU)",
           "2017 - 2019", None),
    4001: (4, 401, 30.0, 91.0, "M", "hispanic", "ELECTIVE", "Medicaid",
           "Surgical Intensive Care Unit (SICU)", "2008 - 2010", None),
    5001: (5, 501, 48.0, 71.0, "F", "asian", "URGENT", "Other",
           "Cardiac Vascular Intensive Care Unit (CVICU)", "2011 - 2013", None),
    6001: (6, 601, 48.0, 30.0, "M", "other", "URGENT", "Other", "Trauma SICU (TSICU)",
           "2014 - 2016", None),
    7001: (7, 701, 48.0, 50.0, "F", "unknown", "URGENT", "Other", "Neuro Intermediate",
           "2017 - 2019", None),
}
