"""MEDS input of `extract`: rebuild the MIMIC-IV tables the sql/ files read from MEDS events.

A MEDS dataset (Medical Event Data Standard, schema of the ``meds`` 0.4 package) is
``data/**/*.parquet`` shards of events (``subject_id`` int64, ``time`` timestamp, ``code`` string,
``numeric_value`` float, optional ``text_value`` string), sorted by subject and time, plus
``metadata/dataset.json`` and ``metadata/codes.parquet``. The shards are exposed to DuckDB as one
view, ``meds_events``; the SQL files of a mapping folder (default ``sql/meds/``: the codes of the
MIMIC-IV -> MEDS ETL, listed in its ``codes.csv``) turn it into ``patients``, ``admissions``,
``icustays``, ``diagnoses_icd``, ``labevents``, ``chartevents``, ``outputevents`` and
``prescriptions`` with the columns of the CSV views (``tables.TABLES``). From there the cohort is
built by the same sql/ files as for a CSV release. Everything runs in DuckDB, out of core.

Shards may carry ``hadm_id`` and ``stay_id`` columns (MEDS allows extra columns); without them
admissions and ICU stays are recovered from the event times (see the mapping's SQL headers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from crypten_fl import sql
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.extract.tables import TABLE_NAMES

DEFAULT_MAPPING = sql.SQL_DIR / "meds"
CODES_CSV = "codes.csv"
CODES_RELATION = "meds_codes"
EVENTS_VIEW = "meds_events"
# Mapping relations created as views, not tables: the MIMIC-IV event tables (each read once, by
# the cohort step that keeps only the events of the stays' windows) and icu_events, read only by
# two of them. The events then stream from the shards through that step and nothing of their
# size is stored; the other relations are small (a row per patient, admission, stay, diagnosis).
STREAMED = frozenset({"icu_events", "chartevents", "outputevents", "labevents", "prescriptions"})
REQUIRED = ("subject_id", "time", "code", "numeric_value")
OPTIONAL = ("text_value", "hadm_id", "stay_id")
_TYPES: dict[str, tuple[str, Any]] = {  # column -> (expected, predicate on the arrow type)
    "subject_id": ("an integer", pa.types.is_integer),
    "time": ("a timestamp without time zone",
             lambda t: pa.types.is_timestamp(t) and t.tz is None),
    "code": ("a string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
             or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))),
    "numeric_value": ("a float", lambda t: pa.types.is_floating(t) or pa.types.is_null(t)),
    "text_value": ("a string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
                   or pa.types.is_null(t)),
    "hadm_id": ("an integer", lambda t: pa.types.is_integer(t) or pa.types.is_null(t)),
    "stay_id": ("an integer", lambda t: pa.types.is_integer(t) or pa.types.is_null(t)),
}
_SQL_TYPES = {"subject_id": "BIGINT", "time": "TIMESTAMP", "code": "VARCHAR",
              "numeric_value": "DOUBLE", "text_value": "VARCHAR", "hadm_id": "BIGINT",
              "stay_id": "BIGINT"}


@dataclass(frozen=True)
class MedsDataset:
    """A located, schema-checked MEDS dataset: its shards and the optional columns they have."""

    root: Path
    shards: tuple[Path, ...]
    optional: frozenset[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    float32_values: bool = True  # numeric_value is float32 (the MEDS type) in every shard

    @property
    def data_dir(self) -> Path:
        """The ``data/`` folder (named in errors about the events)."""
        return self.root / "data"

    def view_sql(self) -> str:
        """``CREATE VIEW meds_events`` over every shard, typed; absent optional columns NULL."""
        files = ", ".join(sql.literal(str(p)) for p in self.shards)
        columns = [
            f"CAST({name} AS {_SQL_TYPES[name]}) AS {name}"
            if name in REQUIRED or name in self.optional
            else f"CAST(NULL AS {_SQL_TYPES[name]}) AS {name}"
            for name in (*REQUIRED, *OPTIONAL)
        ]
        if self.float32_values:
            # A float32 value is read back as the shortest decimal that rounds to it (what the
            # source charted, e.g. 97.9 rather than 97.90000152587891), so that values equal in
            # the source stay equal (duplicates are counted once) and F -> C gives the CSV's.
            columns[3] = ("CAST(CAST(CAST(numeric_value AS FLOAT) AS VARCHAR) AS DOUBLE) "
                          "AS numeric_value")
        return (f"CREATE OR REPLACE VIEW {EVENTS_VIEW} AS SELECT {', '.join(columns)} "
                f"FROM read_parquet([{files}], union_by_name = true)")


def locate(meds_dir: Path) -> MedsDataset:
    """Find the shards of ``meds_dir`` and check their schema; the first problem is a UserError."""
    if not meds_dir.is_dir():
        raise UserError(f"--meds-dir {meds_dir}: directory not found")
    data = meds_dir / "data"
    if not data.is_dir():
        raise UserError(f"--meds-dir {meds_dir}: not a MEDS dataset (no data/ folder of "
                        "parquet shards)")
    shards = tuple(sorted(p for p in data.rglob("*.parquet") if p.is_file()))
    if not shards:
        raise UserError(f"{data}: no .parquet shard found (MEDS: data/**/*.parquet)")
    optional: set[str] = set()
    float32 = True
    for shard in shards:
        present, value_type = _check_schema(shard)
        optional |= present
        float32 = float32 and (pa.types.is_float32(value_type) or pa.types.is_null(value_type))
    return MedsDataset(meds_dir, shards, frozenset(optional), _read_metadata(meds_dir), float32)


def _check_schema(shard: Path) -> tuple[set[str], pa.DataType]:
    """Raise UserError for a missing or mistyped column; returns the optional columns present
    and the type of numeric_value."""
    try:
        schema = pq.read_schema(shard)
    except (OSError, pa.ArrowException) as err:
        raise UserError(f"{shard}: not a readable parquet file ({err})") from err
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise UserError(f"{shard}: missing required MEDS column(s): {', '.join(missing)}")
    for name in (*REQUIRED, *OPTIONAL):
        if name in schema.names:
            expected, ok = _TYPES[name]
            kind = schema.field(name).type
            if not ok(kind):
                raise UserError(f"{shard}: column {name} is {kind}, expected {expected} "
                                "(MEDS schema)")
    return {c for c in OPTIONAL if c in schema.names}, schema.field("numeric_value").type


def _read_metadata(meds_dir: Path) -> dict[str, Any]:
    """metadata/dataset.json (empty if absent); unreadable JSON is a UserError."""
    path = meds_dir / "metadata" / "dataset.json"
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path}: not a readable JSON file ({err})") from err
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object (MEDS dataset metadata)")
    return value


def check_order(dataset: MedsDataset, batch_rows: int = 1 << 20) -> None:
    """Raise UserError unless every shard is sorted by subject_id, then time (NULL times first).

    Streams the two columns in batches: memory stays bounded on shards of any size.
    """
    for shard in dataset.shards:
        try:
            _check_shard_order(shard, batch_rows)
        except (OSError, pa.ArrowException) as err:
            raise UserError(f"{shard}: not a readable parquet file ({err})") from err


def _check_shard_order(shard: Path, batch_rows: int) -> None:
    """UserError at the first event of ``shard`` that goes back in (subject_id, time)."""
    previous: tuple[int, int] | None = None
    row = 0
    for batch in pq.ParquetFile(shard).iter_batches(batch_rows, columns=["subject_id", "time"]):
        if batch.num_rows == 0:
            continue
        subjects = batch.column(0)
        if subjects.null_count:
            raise UserError(f"{shard}: subject_id is NULL in some rows (MEDS requires it)")
        subject = subjects.to_numpy(zero_copy_only=False).astype(np.int64)
        times = batch.column(1).cast(pa.timestamp("us")).cast(pa.int64())
        time = times.fill_null(np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)
        if previous is not None:
            subject = np.concatenate([[previous[0]], subject])
            time = np.concatenate([[previous[1]], time])
        back = (subject[1:] < subject[:-1]) | (
            (subject[1:] == subject[:-1]) & (time[1:] < time[:-1]))
        if back.any():
            i = int(np.argmax(back))
            at = row + i + (1 if previous is None else 0)  # 0-based row of the shard
            raise UserError(
                f"{shard}: events out of order at row {at} (subject_id {subject[i + 1]}); "
                "MEDS shards are sorted by subject_id, then time (static events first)")
        row += batch.num_rows
        previous = (int(subject[-1]), int(time[-1]))


def load_mapping(mapping: Path) -> tuple[list[sql.SqlFile], Path]:
    """The SQL files and codes.csv of a mapping folder; a missing part is a UserError."""
    if not mapping.is_dir():
        raise UserError(f"--meds-mapping {mapping}: directory not found")
    codes = mapping / CODES_CSV
    if not codes.is_file():
        raise UserError(f"--meds-mapping {mapping}: no {CODES_CSV} (code patterns)")
    files = sql.load(mapping)
    missing = sorted({*TABLE_NAMES, CODES_RELATION} - {f.name for f in files})
    if missing:
        raise UserError(f"--meds-mapping {mapping}: missing SQL file(s) "
                        f"{', '.join(m + '.sql' for m in missing)}")
    return files, codes


def report(con: Any, limit: int = 20) -> dict[str, Any]:
    """What the mapping left out: unmapped codes (most frequent first) and subjects without an
    ICU stay. Raises UserError when there is no ICU stay at all."""
    stays = con.execute("SELECT count(*) FROM icustays").fetchone()[0]
    if stays == 0:
        raise UserError("--meds-dir: no ICU stay (no event whose code maps to kind "
                        "icu_admission, e.g. ICU_ADMISSION//<careunit>)")
    unmapped = con.execute(
        f"SELECT code, events FROM {CODES_RELATION} WHERE relation IS NULL "
        "ORDER BY events DESC, code").fetchall()
    without = con.execute(
        "SELECT count(*) FROM patients WHERE subject_id NOT IN "
        "(SELECT subject_id FROM icustays)").fetchone()[0]
    return {
        "unmapped_codes": len(unmapped),
        "unmapped_events": sum(n for _, n in unmapped),
        "most_frequent_unmapped": [{"code": c, "events": n} for c, n in unmapped[:limit]],
        "subjects_without_icu_stay": without,
    }
