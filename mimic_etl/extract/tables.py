"""The MIMIC-IV tables `extract` reads: where they are, which columns, and how DuckDB opens them.

Columns are selected by name from each file's header (never by position), so releases that add
columns (v2.2: caregiver_id, order_provider_id) or rename them (v1.x: ``ethnicity`` for ``race``)
read unchanged. Every column gets an explicit type, so DuckDB never guesses one (it only samples
the file for its dialect and a row estimate, which its join planner needs): keys and times are
typed strictly (a bad one is an error naming the file), free-text columns are VARCHAR, and numeric
value columns are read as VARCHAR and converted leniently (a text value there becomes NULL).
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from crypten_fl import sql
from crypten_fl.common.errors import UserError


@dataclass(frozen=True)
class Column:
    """A column exposed to the SQL under ``name``, read with DuckDB type ``type``.

    ``aliases`` are older names accepted in the header; ``numeric_text`` columns are read as
    VARCHAR and exposed as DOUBLE, NULL where the text is not a number.
    """

    name: str
    type: str
    aliases: tuple[str, ...] = ()
    numeric_text: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A MIMIC-IV table: its module folder(s), file stem and the columns the SQL needs.

    ``key`` is the column MIMIC-IV guarantees unique (one row per patient, admission or stay);
    a duplicate would silently repeat or arbitrarily pick rows in the joins, so it is an error.
    """

    name: str
    folders: tuple[str, ...]
    columns: tuple[Column, ...]
    key: str | None = None


def _id(name: str) -> Column:
    return Column(name, "BIGINT")


def _time(name: str) -> Column:
    return Column(name, "TIMESTAMP")


def _text(name: str, *aliases: str) -> Column:
    return Column(name, "VARCHAR", aliases)


def _number(name: str) -> Column:
    return Column(name, "VARCHAR", numeric_text=True)


# hosp tables lived in core/ in MIMIC-IV v1.x (patients, admissions): looked up there second.
TABLES: tuple[TableSpec, ...] = (
    TableSpec("patients", ("hosp", "core"), (
        _id("subject_id"), _text("gender"), Column("anchor_age", "INTEGER"),
        Column("anchor_year", "INTEGER"), _text("anchor_year_group"),
    ), key="subject_id"),
    TableSpec("admissions", ("hosp", "core"), (
        _id("subject_id"), _id("hadm_id"), _time("admittime"), _text("admission_type"),
        _text("insurance"), _text("race", "ethnicity"),
    ), key="hadm_id"),
    TableSpec("icustays", ("icu",), (
        _id("subject_id"), _id("hadm_id"), _id("stay_id"), _text("first_careunit"),
        _time("intime"), _time("outtime"), _number("los"),
    ), key="stay_id"),
    TableSpec("diagnoses_icd", ("hosp",), (
        _id("hadm_id"), _text("icd_code"), Column("icd_version", "INTEGER"),
    )),
    TableSpec("labevents", ("hosp",), (
        _id("subject_id"), _id("hadm_id"), Column("itemid", "INTEGER"), _time("charttime"),
        _number("valuenum"),
    )),
    TableSpec("prescriptions", ("hosp",), (
        _id("hadm_id"), _time("starttime"), _time("stoptime"), _text("drug_type"),
        _text("drug"), _text("route"),
    )),
    TableSpec("chartevents", ("icu",), (
        _id("stay_id"), Column("itemid", "INTEGER"), _time("charttime"), _number("valuenum"),
    )),
    TableSpec("outputevents", ("icu",), (
        _id("stay_id"), Column("itemid", "INTEGER"), _time("charttime"), _number("value"),
    )),
)
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)


@dataclass(frozen=True)
class InputTable:
    """A located, header-checked input file and the view that exposes it to the SQL."""

    spec: TableSpec
    path: Path
    header: tuple[str, ...]

    def view_sql(self) -> str:
        """``CREATE VIEW <name>`` selecting the needed columns, typed and renamed."""
        lower = {h.lower(): h for h in self.header}
        types: dict[str, str] = {}
        selects: list[str] = []
        for column in self.spec.columns:
            actual = next(lower[n] for n in (column.name, *column.aliases) if n in lower)
            types[actual] = column.type
            expr = _quote_ident(actual)
            if column.numeric_text:
                # try(CAST(...)), not TRY_CAST: DuckDB 2.0 pushes a TRY_CAST into the CSV reader
                # as a strict column type and fails on text (duckdb/duckdb#23818).
                expr = f"try(CAST({expr} AS DOUBLE))"
            selects.append(f"{expr} AS {column.name}")
        columns = ", ".join(
            f"{sql.literal(h)}: {sql.literal(types.get(h, 'VARCHAR'))}" for h in self.header
        )
        # auto_detect with every type given: DuckDB samples the file only for the dialect and a
        # row estimate; without one it assumes 42 rows and builds hash tables on the big side.
        return (
            f"CREATE OR REPLACE VIEW {self.spec.name} AS SELECT {', '.join(selects)} "
            f"FROM read_csv({sql.literal(str(self.path))}, header = true, auto_detect = true, "
            f"delim = ',', quote = '\"', escape = '\"', columns = {{{columns}}})"
        )

    def duplicate_key_sql(self) -> str | None:
        """(key value, rows, repeated keys) of the first duplicated key, if the table has a key."""
        key = self.spec.key
        if key is None:
            return None
        return (
            f"SELECT {key}, count(*) AS n, count(*) OVER () AS keys FROM {self.spec.name} "
            f"WHERE {key} IS NOT NULL GROUP BY {key} HAVING count(*) > 1 ORDER BY {key} LIMIT 1"
        )


def locate(mimic_dir: Path) -> dict[str, InputTable]:
    """Find, open and header-check every table; the first problem is a UserError naming it."""
    if not mimic_dir.is_dir():
        raise UserError(f"--mimic-dir {mimic_dir}: directory not found")
    return {spec.name: _open(spec, mimic_dir) for spec in TABLES}


def _open(spec: TableSpec, mimic_dir: Path) -> InputTable:
    candidates = [
        mimic_dir / folder / f"{spec.name}{ext}"
        for folder in spec.folders
        for ext in (".csv.gz", ".csv")
    ]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise UserError(
            f"{candidates[0]}: required table not found (also looked for "
            f"{', '.join(str(p.relative_to(mimic_dir)) for p in candidates[1:])})"
        )
    header = read_header(path)
    lower = {h.lower() for h in header}
    missing = [
        " or ".join((c.name, *c.aliases))
        for c in spec.columns
        if not any(n in lower for n in (c.name, *c.aliases))
    ]
    if missing:
        raise UserError(f"{path}: missing required column(s): {', '.join(missing)}")
    return InputTable(spec, path, header)


def read_header(path: Path) -> tuple[str, ...]:
    """The header row of a .csv or .csv.gz file; unreadable or corrupt files are a UserError."""
    try:
        with _open_text(path) as handle:
            line = handle.readline()
            if line and not line.endswith("\n"):
                raise UserError(f"{path}: header row is incomplete (file truncated?)")
            if path.suffix == ".gz":
                handle.read(1 << 16)  # decompress a first block: catches most corruption early
    except UserError:
        raise
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (MIMIC-IV files are UTF-8; {err})") from err
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        kind = "not a readable gzip file" if path.suffix == ".gz" else "not readable"
        raise UserError(f"{path}: {kind} ({err})") from err
    header = tuple(h.strip() for h in next(csv.reader([line.lstrip("\ufeff")]), []))
    if not any(header):
        raise UserError(f"{path}: empty file (no header row)")
    return header


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _quote_ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
