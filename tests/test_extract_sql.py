"""The SQL of sql/: derived build order, headers, data files, and the macros' arithmetic."""

from __future__ import annotations

import csv
import graphlib
import re
from pathlib import Path

import duckdb
import pytest
from crypten_fl import sql
from crypten_fl.mimic_etl.extract import EXPORTS, duck, meds, runner
from crypten_fl.mimic_etl.extract.definitions import load_features, load_labels, template_values
from crypten_fl.mimic_etl.extract.tables import TABLE_NAMES
from hypothesis import given, settings
from hypothesis import strategies as st

FILES = sql.load()
CONTRACT_LABELS = [
    "heart_failure", "respiratory_failure", "sepsis", "aki", "malnutrition", "pneumonia", "uti",
    "diabetes", "hypertension", "ckd", "liver_disease", "neurological",
]


def _plan() -> list[runner.Step]:
    values = template_values(load_features(), load_labels())
    exports = {name: Path(f"/tmp/{file}") for name, file in EXPORTS.items()}
    return runner.plan(FILES, set(TABLE_NAMES), exports, values)


def test_derived_dependencies() -> None:
    deps = {s.name: (set(s.depends_on), set(s.reads)) for s in _plan()}
    assert deps["vitals"] == ({"feature_items", "stay_windows"}, {"chartevents"})
    assert deps["labs"] == ({"feature_items", "stay_windows"}, {"labevents"})
    assert deps["urine"] == ({"feature_items", "stay_windows"}, {"outputevents"})
    assert deps["medications"] == ({"drug_patterns", "stay_windows"}, {"prescriptions"})
    assert deps["stay_windows"] == (set(), {"icustays", "admissions", "patients"})
    assert deps["cohort"] == ({"stay_windows", "vitals", "labs", "urine"}, set())
    assert deps["timeseries"][0] == {"cohort", "vitals", "labs", "urine", "medications"}
    assert deps["labels"] == ({"cohort", "label_codes"}, {"diagnoses_icd"})


def test_order_respects_dependencies_and_exports_run_last() -> None:
    steps = _plan()
    assert steps[0].name == "macros" and steps[0].kind == "setup"
    position = {s.name: i for i, s in enumerate(steps)}
    for step in steps:
        assert all(position[d] < position[step.name] for d in step.depends_on), step.name
    assert {s.name for s in steps if s.kind == "export"} == set(EXPORTS)
    assert [s.kind for s in steps[-3:]] == ["export"] * 3
    assert {s.name for s in steps} == {f.name for f in FILES}


def test_each_mimic_table_is_read_by_exactly_one_file() -> None:
    """Large files are scanned once: no two SQL files read the same MIMIC table."""
    readers = {name: [s.name for s in _plan() if name in s.reads] for name in TABLE_NAMES}
    assert all(len(files) == 1 for files in readers.values()), readers


def test_meds_mapping_streams_the_event_tables() -> None:
    """The MEDS mapping's event relations are views (the events stream through the one cohort
    step that reads each), the small relations tables."""
    files, _ = meds.load_mapping(meds.DEFAULT_MAPPING)
    steps = runner.plan(files, {meds.EVENTS_VIEW}, {}, {}, views=meds.STREAMED)
    assert {s.name: s.kind for s in steps} == {
        "meds_codes": "table", "patients": "table", "admissions": "table", "icustays": "table",
        "diagnoses_icd": "table", "icu_events": "view", "chartevents": "view",
        "outputevents": "view", "labevents": "view", "prescriptions": "view",
    }
    for step in steps:
        assert step.statement.startswith(f"CREATE OR REPLACE {step.kind.upper()} {step.name} AS")


def test_references_ignore_comments_and_strings() -> None:
    text = "-- FROM cohort\nSELECT 'JOIN vitals' FROM labs /* JOIN urine */ JOIN read_csv('x')"
    assert runner.references(text, {"cohort", "vitals", "labs", "urine", "read_csv"}) == {"labs"}


def test_cycle_and_non_leaf_export_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT * FROM b")
    (tmp_path / "b.sql").write_text("SELECT * FROM a")
    with pytest.raises(graphlib.CycleError):
        runner.plan(sql.load(tmp_path), set(), {}, {})
    (tmp_path / "b.sql").write_text("SELECT 1 AS x")
    with pytest.raises(ValueError, match="leaf"):
        runner.plan(sql.load(tmp_path), set(), {"b": tmp_path / "b.parquet"}, {})


def test_render_fills_code_not_comments() -> None:
    text = "-- {{ x }} stays\nSELECT {{ x }}, '--' AS s"
    assert sql.render(text, {"x": "1"}) == "-- {{ x }} stays\nSELECT 1, '--' AS s"
    with pytest.raises(KeyError):
        sql.render("SELECT {{ y }}", {})


@pytest.mark.parametrize("file", FILES, ids=[f.name for f in FILES])
def test_every_file_has_a_header(file: sql.SqlFile) -> None:
    header = file.text.split("\n\n", 1)[0]
    for field in ("-- Title:", "-- Definition:", "-- Source:", "-- Inputs:"):
        assert field in header, f"{file.name}.sql lacks {field}"


@pytest.mark.parametrize(
    ("name", "source"),
    [("vitals", "chartevents"), ("labs", "labevents"), ("urine", "outputevents")],
)
def test_header_itemids_match_features_csv(name: str, source: str) -> None:
    """Every itemid is labelled inline in the header, and the list is the one the SQL reads."""
    text = next(f.text for f in FILES if f.name == name)
    labelled = {int(m) for m in re.findall(r"^--\s+(\d{5,6}) -- \S", text, re.MULTILINE)}
    with sql.DATA_FILES["features_csv"].open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["source"] == source]
    assert labelled == {int(r["itemid"]) for r in rows}


def test_features_csv() -> None:
    features = load_features()
    assert len(features) >= 30
    assert len({f.name for f in features}) == len(features)
    groups = [f.group for f in features]
    assert groups == sorted(groups, key=["vitals", "labs", "urine", "meds"].index)
    assert sum(g == "labs" for g in groups) == 21
    con = duckdb.connect()
    duck.set_variables(con, {k: str(v) for k, v in sql.DATA_FILES.items()})
    items = con.sql(next(f.text for f in FILES if f.name == "feature_items")).pl()
    assert items["itemid"].is_unique().all()
    fahrenheit = items.filter(items["itemid"] == 223761).row(0, named=True)
    assert (fahrenheit["valid_low"], fahrenheit["valid_high"]) == (70.0, 116.6)
    assert fahrenheit["conversion"] == "fahrenheit_to_celsius"
    spo2 = items.filter(items["itemid"] == 220277).row(0, named=True)
    assert (spo2["low_inclusive"], spo2["high_inclusive"]) == (False, True)


def test_docs_list_every_feature() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "extract.md").read_text()
    missing = [f.name for f in load_features() if not re.search(rf"\b{f.name}\b", docs)]
    assert not missing


def test_drug_classes_cover_exactly_the_medication_features() -> None:
    meds = {f.name for f in load_features() if f.group == "meds"}
    with sql.DATA_FILES["drug_classes_csv"].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["feature"] for r in rows if r["match"] == "include"} == meds
    for row in rows:
        pattern = row["pattern"]
        assert pattern == pattern.lower().strip() and 3 <= len(pattern) <= 20, pattern
        assert row["match"] in ("include", "exclude")


def _label_codes(labels_csv: Path) -> dict[tuple[str, int], set[str]]:
    con = duckdb.connect()
    duck.set_variables(con, {"labels_csv": str(labels_csv)})
    rows = con.execute(next(f.text for f in FILES if f.name == "label_codes")).fetchall()
    codes: dict[tuple[str, int], set[str]] = {}
    for label, version, prefix in rows:
        codes.setdefault((label, version), set()).add(prefix)
    return codes


def test_labels_csv_expands_ranges() -> None:
    assert load_labels() == CONTRACT_LABELS
    codes = _label_codes(sql.DATA_FILES["labels_csv"])
    assert {label for label, _ in codes} == set(CONTRACT_LABELS)
    assert all((label, v) in codes for label in CONTRACT_LABELS for v in (9, 10))
    assert {"4254", "4255", "4256", "4257", "4258", "4259", "428"} <= codes["heart_failure", 9]
    assert codes["hypertension", 10] == {"I10", "I11", "I12", "I13", "I15", "I16"}
    assert codes["malnutrition", 10] == {f"E4{d}" for d in range(7)} | {"R634", "R64"}
    assert codes["pneumonia", 9] == {str(c) for c in range(480, 487)}


@pytest.mark.parametrize("entry", ["I10-J13", "4254-425", "I1A-I1C", "4259-4254"])
def test_malformed_label_range_names_the_file(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"label,icd9_prefixes,icd10_prefixes,source\nx,428,{entry},test\n")
    with pytest.raises(duckdb.Error, match=r"sql/labels\.csv"):
        _label_codes(path)


def test_malformed_valid_range_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "features.csv"
    path.write_text(
        "feature,group,unit,source,itemid,item_label,valid_range,conversion,reference\n"
        "hr,vitals,bpm,chartevents,220045,HR,0-300,,test\n"
    )
    con = duckdb.connect()
    duck.set_variables(con, {"features_csv": str(path)})
    with pytest.raises(duckdb.Error, match=r"sql/features\.csv"):
        con.execute(next(f.text for f in FILES if f.name == "feature_items")).fetchall()


@pytest.fixture(scope="module")
def macros() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    duck.set_variables(con, {"bin_hours": 3})
    con.execute(next(f.text for f in FILES if f.name == "macros"))
    return con


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(min_value=0, max_value=10 * 24 * 3600))
def test_time_bin_is_exact(macros: duckdb.DuckDBPyConnection, seconds: int) -> None:
    got = macros.execute(
        "SELECT time_bin(TIMESTAMP '2150-01-01 00:00:00' + to_seconds(?), "
        "TIMESTAMP '2150-01-01 00:00:00')",
        [seconds],
    ).fetchall()[0][0]
    assert got == seconds // (3 * 3600)


@settings(max_examples=200, deadline=None)
@given(
    v=st.floats(-5, 5, allow_nan=False), low=st.none() | st.floats(-5, 5, allow_nan=False),
    high=st.none() | st.floats(-5, 5, allow_nan=False), li=st.booleans(), hi=st.booleans(),
)
def test_in_valid_range(
    macros: duckdb.DuckDBPyConnection, v: float, low: float | None, high: float | None,
    li: bool, hi: bool,
) -> None:
    got = macros.execute(
        "SELECT in_valid_range(?::DOUBLE, ?::DOUBLE, ?::DOUBLE, ?, ?)", [v, low, high, li, hi]
    ).fetchall()[0][0]
    above = low is None or v > low or (li and v == low)
    below = high is None or v < high or (hi and v == high)
    assert got == (above and below)


def test_unit_conversions(macros: duckdb.DuckDBPyConnection) -> None:
    rows = macros.execute(
        "SELECT to_target_unit('fahrenheit_to_celsius', 98.6), "
        "to_target_unit('fraction_to_percent', 0.4), to_target_unit('fraction_to_percent', 5), "
        "to_target_unit('fraction_to_percent', 40), to_target_unit('negate', 30), "
        "to_target_unit(NULL, 7)"
    ).fetchall()[0]
    assert rows[0] == pytest.approx(37.0)
    assert rows[1:] == (40.0, None, 40, -30, 7)


def test_run_executes_in_dependency_order_on_prepared_cursors(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT getvariable('k') AS x")
    (tmp_path / "b.sql").write_text("SELECT x + 1 AS x FROM a")
    (tmp_path / "c.sql").write_text("SELECT x * 10 AS x FROM a")
    (tmp_path / "d.sql").write_text("SELECT b.x + c.x AS x FROM b JOIN c ON true")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    steps = runner.plan(sql.load(tmp_path), set(), {}, {})
    seconds = runner.run(
        con, steps, lambda err, step: RuntimeError(step.name),
        prepare=lambda c: duck.set_variables(c, {"k": 4}), workers=2,
    )
    assert set(seconds) == {"a", "b", "c", "d"}
    assert con.execute("SELECT x FROM d").fetchall() == [(45,)]


def test_run_reports_the_failing_step(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT 1 AS x")
    (tmp_path / "b.sql").write_text("SELECT * FROM a JOIN no_such_table ON true")
    con = duckdb.connect()
    steps = runner.plan(sql.load(tmp_path), set(), {}, {})
    with pytest.raises(LookupError, match=r"^b$"):
        runner.run(con, steps, lambda err, step: LookupError(step.name))


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_a_literal_reads_back_as_the_same_text(text) -> None:
    """Paths and names go into SQL through sql.literal: quotes in them cannot end the string."""
    assert duckdb.connect().execute(f"SELECT {sql.literal(text)}").fetchall() == [(text,)]


def test_a_release_under_a_path_with_a_quote_is_read(tmp_path) -> None:
    folder = tmp_path / "o'brien's data"
    folder.mkdir()
    (folder / "t.csv").write_text("a,b\n1,x\n")
    con = duckdb.connect()
    query = f"SELECT a, b FROM read_csv({sql.literal(str(folder / 't.csv'))}, header = true)"
    assert con.execute(query).fetchall() == [(1, "x")]
