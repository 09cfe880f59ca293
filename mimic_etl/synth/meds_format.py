"""A synthetic release as a MEDS dataset: the CSV tables turned into MEDS events by DuckDB.

Codes follow the MIMIC-IV -> MEDS ETL (the default mapping of ``extract --meds-dir``, listed in
sql/meds/codes.csv): ``GENDER//<g>`` (static), ``MEDS_BIRTH`` on 1 January of anchor_year -
anchor_age, ``MEDS_DEATH``, ``HOSPITAL_ADMISSION//<type>//<location>`` with ``INSURANCE//<x>``
and ``RACE//<x>`` at admittime, ``HOSPITAL_DISCHARGE//<location>``, ``ICU_ADMISSION//<unit>``,
``ICU_DISCHARGE//<unit>``, ``DIAGNOSIS//ICD//<9|10>//<code>`` at the admission's dischtime,
``LAB//<itemid>//<unit>`` for labevents and chartevents, ``SUBJECT_FLUID_OUTPUT//<itemid>//<unit>``
and ``MEDICATION//START|STOP//<drug>`` (route as the START's text_value; an order without a later
stoptime stops at its start). Events keep the release's ``hadm_id`` and ``stay_id`` as extra
columns, so a cohort extracted from them has the same stay ids as one extracted from the CSVs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
from crypten_fl import sql
from crypten_fl.common import __version__
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.mimic_etl.synth.schema import columns as columns_of
from crypten_fl.mimic_etl.synth.schema import table_path

SHARDS: dict[str, str] = {"train/0.parquet": "subject_id % 2 = 0",
                          "held_out/0.parquet": "subject_id % 2 = 1"}
MEDS_VERSION = "0.4.1"
#: DuckDB's memory cap while writing (as `extract`'s default); the sorts spill beyond it
MEMORY_LIMIT = "3GB"

_EVENTS = """
SELECT subject_id, CAST(NULL AS TIMESTAMP) AS time, 'GENDER//' || gender AS code,
    NULL AS numeric_value, NULL AS text_value, NULL AS hadm_id, NULL AS stay_id
FROM patients WHERE gender IS NOT NULL
UNION ALL
SELECT subject_id, make_timestamp(anchor_year - anchor_age, 1, 1, 0, 0, 0), 'MEDS_BIRTH',
    NULL, NULL, NULL, NULL
FROM patients WHERE anchor_year IS NOT NULL AND anchor_age IS NOT NULL
UNION ALL
SELECT subject_id, CAST(dod AS TIMESTAMP), 'MEDS_DEATH', NULL, NULL, NULL, NULL
FROM patients WHERE dod IS NOT NULL
UNION ALL
SELECT subject_id, admittime, 'HOSPITAL_ADMISSION//' || coalesce(admission_type, 'UNK') || '//'
    || coalesce(admission_location, 'UNK'), NULL, NULL, hadm_id, NULL
FROM admissions WHERE admittime IS NOT NULL
UNION ALL
SELECT subject_id, admittime, 'INSURANCE//' || insurance, NULL, NULL, hadm_id, NULL
FROM admissions WHERE admittime IS NOT NULL AND insurance IS NOT NULL
UNION ALL
SELECT subject_id, admittime, 'RACE//' || race, NULL, NULL, hadm_id, NULL
FROM admissions WHERE admittime IS NOT NULL AND race IS NOT NULL
UNION ALL
SELECT subject_id, dischtime, 'HOSPITAL_DISCHARGE//' || coalesce(discharge_location, 'UNK'),
    NULL, NULL, hadm_id, NULL
FROM admissions WHERE dischtime IS NOT NULL
UNION ALL
SELECT subject_id, intime, 'ICU_ADMISSION//' || coalesce(first_careunit, 'UNK'), NULL, NULL,
    hadm_id, stay_id
FROM icustays WHERE intime IS NOT NULL
UNION ALL
SELECT subject_id, outtime, 'ICU_DISCHARGE//' || coalesce(last_careunit, 'UNK'), NULL, NULL,
    hadm_id, stay_id
FROM icustays WHERE outtime IS NOT NULL
UNION ALL
SELECT d.subject_id, a.dischtime,
    'DIAGNOSIS//ICD//' || d.icd_version || '//' || d.icd_code, NULL, NULL, d.hadm_id, NULL
FROM diagnoses_icd AS d JOIN admissions AS a USING (hadm_id)
WHERE a.dischtime IS NOT NULL AND d.icd_code IS NOT NULL
UNION ALL
SELECT subject_id, charttime, 'LAB//' || itemid || '//' || coalesce(valueuom, 'UNK'),
    try(CAST(CAST(valuenum AS DOUBLE) AS FLOAT)), value, hadm_id, NULL
FROM labevents WHERE charttime IS NOT NULL
UNION ALL
SELECT subject_id, charttime, 'LAB//' || itemid || '//' || coalesce(valueuom, 'UNK'),
    try(CAST(CAST(valuenum AS DOUBLE) AS FLOAT)), value, hadm_id, stay_id
FROM chartevents WHERE charttime IS NOT NULL
UNION ALL
SELECT subject_id, charttime,
    'SUBJECT_FLUID_OUTPUT//' || itemid || '//' || coalesce(valueuom, 'UNK'),
    try(CAST(CAST(value AS DOUBLE) AS FLOAT)), NULL, hadm_id, stay_id
FROM outputevents WHERE charttime IS NOT NULL
UNION ALL
SELECT subject_id, starttime, 'MEDICATION//START//' || drug, NULL, route, hadm_id, NULL
FROM prescriptions WHERE starttime IS NOT NULL AND drug IS NOT NULL
UNION ALL
SELECT subject_id, CASE WHEN stoptime > starttime THEN stoptime ELSE starttime END,
    'MEDICATION//STOP//' || drug, NULL, NULL, hadm_id, NULL
FROM prescriptions WHERE starttime IS NOT NULL AND drug IS NOT NULL
"""

_ID, _TIME = "BIGINT", "TIMESTAMP"
#: the types of the columns the events read (every other column is read as text): declared, so
#: that DuckDB need not sniff whole files (a full-size chartevents is 430 M rows)
_TYPES: dict[str, dict[str, str]] = {
    "patients": {"subject_id": _ID, "anchor_age": "INTEGER", "anchor_year": "INTEGER"},
    "admissions": {"subject_id": _ID, "hadm_id": _ID, "admittime": _TIME, "dischtime": _TIME},
    "icustays": {"subject_id": _ID, "hadm_id": _ID, "stay_id": _ID, "intime": _TIME,
                 "outtime": _TIME},
    "diagnoses_icd": {"subject_id": _ID, "hadm_id": _ID, "icd_version": "INTEGER"},
    "labevents": {"subject_id": _ID, "hadm_id": _ID, "itemid": _ID, "charttime": _TIME},
    "chartevents": {"subject_id": _ID, "hadm_id": _ID, "stay_id": _ID, "itemid": _ID,
                    "charttime": _TIME},
    "outputevents": {"subject_id": _ID, "hadm_id": _ID, "stay_id": _ID, "itemid": _ID,
                     "charttime": _TIME},
    "prescriptions": {"subject_id": _ID, "hadm_id": _ID, "starttime": _TIME,
                      "stoptime": _TIME},
    "d_labitems": {"itemid": _ID},
    "d_items": {"itemid": _ID},
}


def write_meds(release: Path, out: Path, version: str, seed: int,
               progress: ProgressFn = no_progress) -> dict[str, tuple[int, int]]:
    """Write the events of the CSV ``release`` as a MEDS dataset into ``out``.

    Out of core: the events go to a scratch DuckDB file next to ``out`` (removed at the end)
    under :data:`MEMORY_LIMIT`, and each shard's sort spills to disk, so a full-size release
    (≈ 600 M events) is written in a few GB of memory. Returns ``{shard path relative to out:
    (rows, bytes)}``, metadata files included.
    """
    (out / "metadata").mkdir(parents=True)
    steps = len(SHARDS) + 2
    progress("MEDS events", 0, steps)
    with tempfile.TemporaryDirectory(prefix=".meds-scratch-", dir=out.parent) as scratch:
        con = duckdb.connect(str(Path(scratch) / "events.duckdb"))
        try:
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            con.execute(f"SET temp_directory = {sql.literal(scratch)}")
            con.execute("SET threads = 2")
            written = _write(con, release, out, progress, steps)
        finally:
            con.close()
    dataset = {
        "dataset_name": f"crypten-fl synthetic MIMIC-IV v{version} (seed {seed})",
        "dataset_version": version,
        "etl_name": "crypten-fl synth --format meds",
        "etl_version": __version__,
        "meds_version": MEDS_VERSION,
    }
    meta = out / "metadata" / "dataset.json"
    meta.write_text(json.dumps(dataset, indent=2) + "\n")
    written["metadata/dataset.json"] = (1, meta.stat().st_size)
    progress("MEDS events", steps, steps)
    return written


def _write(con: duckdb.DuckDBPyConnection, release: Path, out: Path, progress: ProgressFn,
           steps: int) -> dict[str, tuple[int, int]]:
    """The events table, its shards and codes.parquet (see :func:`write_meds`)."""
    for table, types in _TYPES.items():
        path = sql.literal(str(table_path(release, table)))
        columns = ", ".join(f"{sql.literal(name)}: {sql.literal(types.get(name, 'VARCHAR'))}"
                            for name in columns_of(table))
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_csv({path}, header = true,"
                    f" columns = {{{columns}}})")
    con.execute(
        "CREATE TABLE events AS SELECT CAST(subject_id AS BIGINT) AS subject_id, "
        "CAST(time AS TIMESTAMP) AS time, code, CAST(numeric_value AS FLOAT) AS numeric_value,"
        " CAST(text_value AS VARCHAR) AS text_value, CAST(hadm_id AS BIGINT) AS hadm_id, "
        f"CAST(stay_id AS BIGINT) AS stay_id FROM ({_EVENTS})")
    progress("MEDS events", 1, steps)
    written: dict[str, tuple[int, int]] = {}
    for name, where in SHARDS.items():
        target = out / "data" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"COPY (SELECT * FROM events WHERE {where} ORDER BY subject_id, time NULLS FIRST,"
            f" code, numeric_value, text_value) TO {sql.literal(str(target))} (FORMAT parquet)")
        rows = con.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()[0]
        written[f"data/{name}"] = (rows, target.stat().st_size)
        progress("MEDS events", len(written) + 1, steps)
    codes = out / "metadata" / "codes.parquet"
    con.execute(
        "COPY (SELECT e.code, coalesce(l.label, i.label) AS description, "
        "CAST([] AS VARCHAR[]) AS parent_codes FROM (SELECT DISTINCT code FROM events) AS e "
        "LEFT JOIN d_labitems AS l ON e.code LIKE 'LAB//' || l.itemid || '//%' "
        "LEFT JOIN d_items AS i ON e.code LIKE 'LAB//' || i.itemid || '//%' "
        f"ORDER BY e.code) TO {sql.literal(str(codes))} (FORMAT parquet)")
    written["metadata/codes.parquet"] = (
        con.execute(f"SELECT count(*) FROM {sql.literal(str(codes))}").fetchone()[0],
        codes.stat().st_size)
    return written
