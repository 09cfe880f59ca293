"""Hostile inputs for `crypten-fl extract` (and `synth`'s output location), see helpers/fuzz.py.

The input is a copy of the tiny MIMIC-IV download of helpers/mimic_fixture.py. A damaged file must
give one error line naming it; a legal oddity (unicode, shuffled rows, BOM, CRLF, .csv, paths with
spaces, a value that is not a number) must give exactly the cohort of an equivalent clean input.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from crypten_fl.mimic_etl.extract import extract
from crypten_fl.mimic_etl.extract.tables import TABLES
from helpers.fuzz import (
    Case,
    Mutation,
    Outcome,
    Workspace,
    copy_into,
    drop_column,
    duplicate_rows,
    edit_rows,
    edit_text,
    flip_byte,
    keep_rows,
    params,
    place,
    readonly_view,
    remove,
    rename_column,
    run_case,
    set_cells,
    shuffle_rows,
    tmpfs,
    truncate,
    write_file,
)
from helpers.mimic_fixture import EXPECTED_STAYS, at, write_mimic

TABLE_FILE = {t.name: f"{{mimic}}/{t.folders[0]}/{t.name}.csv.gz" for t in TABLES}
BASE = ("extract", "--mimic-dir", "{mimic}", "--out", "{out}", "--threads", "1")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mimic(tmp_path_factory.mktemp("fuzz-extract") / "mimic")


def workspace(pristine: Path, root: Path) -> Workspace:
    mimic = copy_into(root, pristine, "mimic")
    return Workspace(root, {"mimic": mimic, "out": root / "cohort", "pristine": pristine},
                     inputs=["mimic"], outputs=["out"])


# --- expected results --------------------------------------------------------------------

_REFERENCES: dict[str, dict[str, Any]] = {}


def read_cohort(out: Path) -> dict[str, Any]:
    frames: dict[str, Any] = {n: pl.read_parquet(out / f"{n}.parquet", glob=False)
                              for n in ("static", "labels", "timeseries")}
    frames["flow"] = json.loads((out / "cohort_flow.json").read_text())
    frames["features"] = json.loads((out / "manifest.json").read_text())["features"]
    return frames


def reference(pristine: Path, key: str, mutations: tuple[Mutation, ...]) -> dict[str, Any]:
    """The cohort extracted (by the library) from the fixture after clean ``mutations``."""
    if key not in _REFERENCES:
        with tempfile.TemporaryDirectory() as tmp:
            ws = workspace(pristine, Path(tmp))
            for mutation in mutations:
                mutation(ws)
            extract(ws.paths["mimic"], ws.paths["out"], threads=1)
            _REFERENCES[key] = read_cohort(ws.paths["out"])
    return _REFERENCES[key]


def same_cohort(key: str = "pristine", *clean: Mutation,
                static: dict[tuple[int, str], Any] | None = None) -> Callable[..., None]:
    """Check: the output equals the cohort of the equivalent clean input (``clean`` applied to the
    fixture), except for the ``static`` cells {(stay_id, column): value} given."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        got = read_cohort(ws.paths["out"])
        want = reference(ws.paths["pristine"], key, clean)
        expected_static = want["static"]
        for (stay, column), value in (static or {}).items():
            expected_static = expected_static.with_columns(
                pl.when(pl.col("stay_id") == stay).then(pl.lit(value))
                .otherwise(pl.col(column)).alias(column))
        assert got["static"].equals(expected_static), (got["static"], expected_static)
        assert got["labels"].equals(want["labels"])
        assert got["timeseries"].equals(want["timeseries"])
        assert (got["flow"], got["features"]) == (want["flow"], want["features"])
    return check


def cohort_of(stays: tuple[int, ...], unobserved: str | None = None,
              no_labels: bool = False) -> Callable[..., None]:
    """Check: exactly ``stays``; every feature read from table ``unobserved`` is never observed
    (medication flags all 0); with ``no_labels`` every label is 0."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        got = read_cohort(ws.paths["out"])
        assert got["static"]["stay_id"].to_list() == sorted(stays)
        names = [f["name"] for f in got["features"] if f["source"].split()[0] == unobserved]
        assert names or unobserved is None, f"no feature comes from {unobserved}"
        ts = got["timeseries"]
        for name in names:
            if unobserved == "prescriptions":
                assert ts[name].sum() == 0, name
            else:
                assert ts[f"{name}_mask"].sum() == 0 and ts[name].null_count() == ts.height, name
        if no_labels:
            assert got["labels"].drop("stay_id", "subject_id").sum_horizontal().sum() == 0
    return check


# --- the catalogue -----------------------------------------------------------------------


# Cases that run the SQL cost ~0.3 s each: the default run keeps one or two of each family and
# marks the rest slow (`pytest -m slow` runs them); cases that fail at the header check are cheap.
SLOW = (pytest.mark.slow,)


def fails(case_id: str, *mutate: Mutation, error: tuple[str, ...],
          args: tuple[str, ...] = (), slow: bool = False, marks: tuple[Any, ...] = ()) -> Case:
    return Case(case_id, (*BASE, *args), mutate, error=error, marks=(*marks, *SLOW[:slow]))


def works(case_id: str, *mutate: Mutation, check: Callable[..., None],
          args: tuple[str, ...] = (), slow: bool = False, marks: tuple[Any, ...] = ()) -> Case:
    return Case(case_id, (*BASE, *args), mutate, check=check, marks=(*marks, *SLOW[:slow]))


def column_cases() -> list[Case]:
    """Every required column of every table, renamed or missing."""
    cases = []
    for spec in TABLES:
        path = TABLE_FILE[spec.name]
        for col in spec.columns:
            wanted = " or ".join((col.name, *col.aliases))
            message = f"missing required column(s): {wanted}"
            cases += [
                fails(f"{spec.name}.{col.name}-missing", drop_column(path, col.name),
                      error=(path, message)),
                fails(f"{spec.name}.{col.name}-renamed",
                      rename_column(path, col.name, f"{col.name}_x"), error=(path, message)),
            ]
    return cases


# DuckDB reads "1001.0" as 1001 (a legal spelling, see time_cases) but also rounds "3.5" to 4:
# a decimal id is not rejected (documented in docs/reliability.md)
BAD_STRICT = {"BIGINT": ("x17", "1e300", "99999999999999999999999"),
              "INTEGER": ("abc", "1e300"),
              "TIMESTAMP": ("yesterday", "2150-13-45 10:00:00", "1e300")}


# required by the header check but read by no SQL file: its content does not matter
UNREAD = {("admissions", "subject_id")}


def strict_value_cases() -> list[Case]:
    """A non-number, a huge number or a bad time in a typed key/time column: the file is named."""
    cases = []
    for spec in TABLES:
        for col in spec.columns:
            values = BAD_STRICT.get(col.type, ()) if not col.numeric_text else ()
            for i, value in enumerate(values):
                mutation = set_cells(TABLE_FILE[spec.name], col.name, value, first_only=True)
                case_id = f"{spec.name}.{col.name}={value}"
                if (spec.name, col.name) in UNREAD:
                    cases.append(works(case_id, mutation, check=same_cohort(), slow=i > 0))
                else:
                    cases.append(fails(case_id, mutation, slow=i > 0, error=(
                        TABLE_FILE[spec.name], f'column "{col.name}"', value)))
    return cases


def _hr80(row: dict[str, str]) -> bool:
    return row["stay_id"] == "1001" and row["itemid"] == "220045" and row["valuenum"] == "80"


def _wbc(row: dict[str, str]) -> bool:
    return row["itemid"] == "51301"


def _urine50(row: dict[str, str]) -> bool:
    return row["stay_id"] == "1001" and row["value"] == "50"


LENIENT = [("chartevents", "valuenum", _hr80), ("labevents", "valuenum", _wbc),
           ("outputevents", "value", _urine50)]


def lenient_value_cases() -> list[Case]:
    """Text, NaN, inf, 1e300 or a negative number in a measurement: treated as not measured."""
    cases = []
    for table, column, where in LENIENT:
        path = TABLE_FILE[table]
        blank = set_cells(path, column, "", where)
        for value in ("abc", "NaN", "inf", "-1e300", "1e300", "-5"):
            cases.append(works(f"{table}.{column}={value}", set_cells(path, column, value, where),
                               check=same_cohort(f"{table}-blank", blank),
                               slow=value not in ("abc", "1e300")))
    los = TABLE_FILE["icustays"]
    cases += [works(f"icustays.los={v}", set_cells(los, "los", v), check=same_cohort(),
                    slow=v != "abc") for v in ("abc", "-3", "1e300")]
    return cases


def gzip_cases() -> list[Case]:
    """Truncated and corrupt gzip streams, plain text named .gz and gzip named .csv, per table."""
    cases = []
    for spec in TABLES:
        path = TABLE_FILE[spec.name]
        plain = path.removesuffix(".gz")
        damage: dict[str, Mutation] = {
            "truncated-10B": truncate(path, 10), "truncated-half": truncate(path, 0.5),
            "no-trailer": truncate(path, -8), "last-byte-cut": truncate(path, -1),
            "bad-magic": flip_byte(path, 0), "bad-method": flip_byte(path, 2),
            "corrupt-middle": flip_byte(path, 0.5), "bad-crc": flip_byte(path, -6),
            "zero-bytes": write_file(path, b""), "not-gzip": write_file(path, "a,b\n1,2\n"),
        }
        cases += [fails(f"{spec.name}-{name}", mutation, error=(path,))
                  for name, mutation in damage.items()]
        gz_as_csv = [lambda ws, p=path: ws.path(p).rename(ws.path(p.removesuffix(".gz")))]
        cases.append(fails(f"{spec.name}-gzip-named-csv", *gz_as_csv, error=(plain,)))
    return cases


def text_format_cases() -> list[Case]:
    """Wrong delimiters per table (an error), BOM and CRLF in every table (the same cohort)."""
    cases = []
    for spec in TABLES:
        path = TABLE_FILE[spec.name]
        for name, sep in (("semicolon", ";"), ("tab", "\t")):
            cases.append(fails(f"{spec.name}-{name}-delimited",
                               edit_text(path, lambda t, s=sep: t.replace(",", s)),
                               error=(path, "missing required column(s)")))
    every = list(TABLE_FILE.values())
    cases += [
        works("bom-every-table", *(edit_text(p, lambda t: "\ufeff" + t) for p in every),
              check=same_cohort()),
        works("crlf-every-table", *(edit_text(p, lambda t: t.replace("\n", "\r\n")) for p in every),
              check=same_cohort()),
        works("uppercase-header", edit_text(TABLE_FILE["admissions"], lambda t: t.replace(
            t.split("\n", 1)[0], t.split("\n", 1)[0].upper(), 1)), check=same_cohort()),
        works("race-named-ethnicity", rename_column(TABLE_FILE["admissions"], "race", "ethnicity"),
              check=same_cohort()),
        fails("latin1-careunit", write_file(TABLE_FILE["icustays"], gzip.compress(
            "stay_id,subject_id,hadm_id,first_careunit,intime,outtime,los\n"
            "1,1,1,Médical,2150-01-01 00:00:00,,\n".encode("latin-1"))),
              error=(TABLE_FILE["icustays"], "UTF-8")),
    ]
    return cases


def empty_cases() -> list[Case]:
    """Header-only tables: the cohort criteria or features they feed come out empty."""
    header_only = {t: keep_rows(p, lambda i, r: False) for t, p in TABLE_FILE.items()}
    empty_cohort = "no ICU stay left after cohort step"
    return [
        fails("patients-header-only", header_only["patients"],
              error=("--mimic-dir {mimic}", empty_cohort, "has_patient")),
        fails("admissions-header-only", header_only["admissions"],
              error=("--mimic-dir {mimic}", empty_cohort, "has_admission")),
        fails("icustays-header-only", header_only["icustays"],
              error=("--mimic-dir {mimic}", "icu/icustays has no ICU stays")),
        works("chartevents-header-only", header_only["chartevents"],
              check=cohort_of((1001, 4001), unobserved="chartevents")),
        works("labevents-header-only", header_only["labevents"],
              check=cohort_of((1001, 2001, 5001, 6001, 7001), unobserved="labevents")),
        works("outputevents-header-only", header_only["outputevents"],
              check=cohort_of(EXPECTED_STAYS, unobserved="outputevents")),
        works("prescriptions-header-only", header_only["prescriptions"],
              check=cohort_of(EXPECTED_STAYS, unobserved="prescriptions")),
        works("diagnoses-header-only", header_only["diagnoses_icd"],
              check=cohort_of(EXPECTED_STAYS, no_labels=True)),
    ]


def duplicate_and_order_cases() -> list[Case]:
    """Repeated keys are an error; repeated events and any row order give the same cohort."""
    def first(r: dict[str, str]) -> bool:
        return r.get("subject_id") == "1" or r.get("hadm_id") == "101"
    cases = [
        fails("patients-duplicate-subject", duplicate_rows(TABLE_FILE["patients"], first),
              error=(TABLE_FILE["patients"], "subject_id 1 appears in 2 rows")),
        fails("admissions-duplicate-hadm", duplicate_rows(TABLE_FILE["admissions"],
                                                         lambda r: r["hadm_id"] == "101"),
              error=(TABLE_FILE["admissions"], "hadm_id 101 appears in 2 rows")),
        fails("icustays-duplicate-stay", duplicate_rows(TABLE_FILE["icustays"],
                                                       lambda r: r["stay_id"] == "1001"),
              error=(TABLE_FILE["icustays"], "stay_id 1001 appears in 2 rows")),
        fails("patients-conflicting-duplicate", duplicate_rows(TABLE_FILE["patients"], first),
              set_cells(TABLE_FILE["patients"], "anchor_age", "20",
                        lambda r: r["subject_id"] == "1", first_only=True),
              error=(TABLE_FILE["patients"], "subject_id 1")),
    ]
    for table in ("chartevents", "labevents", "outputevents", "prescriptions", "diagnoses_icd"):
        cases.append(works(f"{table}-every-row-twice", duplicate_rows(TABLE_FILE[table]),
                           check=same_cohort(), slow=table not in ("chartevents", "prescriptions")))
    cases += [
        works("every-table-shuffled", *(shuffle_rows(p, 3) for p in TABLE_FILE.values()),
              check=same_cohort()),
        works("icustays-shuffled", shuffle_rows(TABLE_FILE["icustays"], 1), check=same_cohort()),
    ]
    return cases


def time_cases() -> list[Case]:
    """Events before admission, after the window, ISO 'T' times and fractional seconds."""
    chart = TABLE_FILE["chartevents"]
    drop_hr80 = keep_rows(chart, lambda i, r: not _hr80(r))
    return [
        works("event-before-icu-admission", set_cells(chart, "charttime", at(1001, -5), _hr80),
              check=same_cohort("hr80-deleted", drop_hr80)),
        works("event-after-window", set_cells(chart, "charttime", at(1001, 400), _hr80),
              check=same_cohort("hr80-deleted", drop_hr80), slow=True),
        works("event-of-unknown-stay", set_cells(chart, "stay_id", "-1001", _hr80),
              check=same_cohort("hr80-deleted", drop_hr80)),
        works("iso-t-timestamps", edit_text(chart, lambda t: t.replace(" 1", "T1").replace(
            " 0", "T0").replace(" 2", "T2")), check=same_cohort()),
        works("ids-written-as-floats", edit_rows(chart, lambda h, rows: (h, [
            {**r, "stay_id": r["stay_id"] + ".0", "itemid": r["itemid"] + ".0"} for r in rows])),
              check=same_cohort()),
        works("fractional-seconds", edit_text(chart, lambda t: t.replace(":00,", ":00.000,")),
              check=same_cohort(), slow=True),
        works("anchor-age-negative", set_cells(TABLE_FILE["patients"], "anchor_age", "-5",
                                               lambda r: r["subject_id"] == "1"),
              check=same_cohort("age-0", set_cells(TABLE_FILE["patients"], "anchor_age", "0",
                                                    lambda r: r["subject_id"] == "1"))),
    ]


UNICODE = 'Médical ICU 🏥 "A", line\nbreak — ünïcode'


def unicode_cases() -> list[Case]:
    """Unicode, emoji, quotes and newlines in free text: passed through or matched as before."""
    icu, adm = TABLE_FILE["icustays"], TABLE_FILE["admissions"]
    return [
        works("unicode-careunit", set_cells(icu, "first_careunit", UNICODE,
                                            lambda r: r["stay_id"] == "1001"),
              check=same_cohort(static={(1001, "first_careunit"): UNICODE})),
        works("unicode-insurance", set_cells(adm, "insurance", "Privé 🙂 «x»",
                                             lambda r: r["hadm_id"] == "101"),
              check=same_cohort(static={(1001, "insurance"): "Privé 🙂 «x»"})),
        works("unicode-race-prefix", set_cells(adm, "race", "WHITE – ÉTHNIQUE 😀",
                                               lambda r: r["hadm_id"] == "101"),
              check=same_cohort(), slow=True),
        works("emoji-drug-name", set_cells(TABLE_FILE["prescriptions"], "drug",
                                           "💉 Norepinephrine «bolus»",
                                           lambda r: r["drug"] == "Norepinephrine"),
              check=same_cohort()),
        works("unicode-chart-text-value", set_cells(TABLE_FILE["chartevents"], "value", UNICODE,
                                                    lambda r: r["itemid"] == "227969"),
              check=same_cohort(), slow=True),
        works("unicode-lab-comments", set_cells(TABLE_FILE["labevents"], "comments",
                                                UNICODE + "\r\n🙂,,\"\"", first_only=True),
              check=same_cohort()),
    ]


def location_cases() -> list[Case]:
    """Paths with spaces and unicode, .csv instead of .csv.gz, read-only inputs, bad --out."""
    def uncompress(table: str) -> Mutation:
        def mutate(ws: Workspace) -> None:
            path = ws.path(TABLE_FILE[table])
            path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
            path.unlink()
        return mutate
    return [
        works("paths-with-spaces-and-unicode", place("mimic", "my mimic ü 🙂/v3.1"),
              place("out", "co hort é/out put"), lambda ws: ws.paths["out"].parent.mkdir(),
              check=same_cohort()),
        works("paths-with-brackets", place("mimic", "mimic [v3.1] [/b]"),
              place("out", "out [bold]"), check=same_cohort()),
        works("every-table-uncompressed", *(uncompress(t) for t in TABLE_FILE),
              check=same_cohort()),
        works("one-table-uncompressed", uncompress("chartevents"), check=same_cohort(),
              slow=True),
        works("gz-preferred-over-broken-csv", write_file("{mimic}/icu/chartevents.csv", "junk"),
              check=same_cohort()),
        works("read-only-input", readonly_view("mimic"), check=same_cohort()),
        fails("out-parent-read-only", tmpfs("ro", readonly=True), place("out", "ro/cohort"),
              error=("--out {out}", "not writable")),
        fails("disk-full", tmpfs("full", size="64k"), place("out", "full/cohort"),
              error=("--out {out}", "no space left on device")),
        fails("out-is-a-file", write_file("{out}", "x"), error=("--out {out}", "not a directory")),
        fails("out-parent-missing", place("out", "nowhere/cohort"),
              error=("--out {out}", "does not exist")),
        fails("out-not-empty", write_file("{out}/mine.txt", "keep"),
              error=("--out {out}", "--overwrite")),
        Case("out-is-the-mimic-dir",
             ("extract", "--mimic-dir", "{mimic}", "--out", "{mimic}", "--overwrite"),
             error=("--out {mimic}", "is --mimic-dir")),
        fails("mimic-dir-missing", remove("{mimic}"), error=("--mimic-dir {mimic}", "not found")),
        fails("table-missing", remove(TABLE_FILE["chartevents"]),
              error=(TABLE_FILE["chartevents"], "required table not found")),
    ]


def option_cases() -> list[Case]:
    """Out-of-range and ill-typed options."""
    bad = [
        ("hours-0", ("--hours", "0"), "--hours 0"),
        ("hours-negative", ("--hours", "-48"), "--hours -48"),
        ("too-many-bins", ("--hours", "40000", "--bin-hours", "1"), "--bin-hours 1"),
        ("bin-hours-0", ("--bin-hours", "0"), "--bin-hours 0"),
        ("bin-hours-not-dividing", ("--bin-hours", "5"), "--bin-hours 5"),
        ("min-age-negative", ("--min-age", "-1"), "--min-age -1"),
        ("min-age-200", ("--min-age", "200"), "--min-age 200"),
        ("min-los-negative", ("--min-los-hours", "-1"), "--min-los-hours -1"),
        ("min-los-nan", ("--min-los-hours", "nan"), "--min-los-hours nan"),
        ("min-los-inf", ("--min-los-hours", "inf"), "--min-los-hours inf"),
        ("threads-0", ("--threads", "0"), "--threads 0"),
        ("memory-limit-text", ("--memory-limit", "lots"), "--memory-limit 'lots'"),
        ("memory-limit-1KB", ("--memory-limit", "1KB"), "--memory-limit 1KB"),
        ("memory-limit-0GB", ("--memory-limit", "0GB"), "--memory-limit 0GB"),
        ("memory-limit-1MB", ("--memory-limit", "1MB"), "--memory-limit 1MB"),
        ("hours-not-a-number", ("--hours", "abc"), "--hours"),
        ("unknown-option", ("--frobnicate", "1"), "--frobnicate"),
    ]
    return [fails(f"option-{name}", args=args, error=(option,)) for name, args, option in bad]


CASES = [
    *column_cases(), *strict_value_cases(), *lenient_value_cases(), *gzip_cases(),
    *text_format_cases(), *empty_cases(), *duplicate_and_order_cases(), *time_cases(),
    *unicode_cases(), *location_cases(), *option_cases(),
    Case("subprocess-truncated-gzip", BASE, (truncate(TABLE_FILE["chartevents"], 0.5),),
         error=(TABLE_FILE["chartevents"],), subprocess=True),
]


@pytest.mark.parametrize("case", params(CASES))
def test_extract(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
