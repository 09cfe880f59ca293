"""Hostile inputs for `crypten-fl partition`, see helpers/fuzz.py.

The input is a copy of a 40-patient cohort from helpers/cohort_fixture.py. A broken cohort file or
option must give one error line naming it; a legal oddity (rows in another order, float64 values,
unicode care units, paths with spaces, read-only inputs) must give the right federation.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from crypten_fl.mimic_etl.partition.pipeline import partition
from helpers.cohort_fixture import LABEL_NAMES, STATIC_COLUMNS, random_cohort
from helpers.fuzz import (
    Case,
    Mutation,
    Outcome,
    Workspace,
    copy_into,
    edit_json,
    edit_parquet,
    flip_byte,
    params,
    place,
    readonly_view,
    remove,
    run_case,
    tmpfs,
    truncate,
    with_values,
    without_key,
    write_file,
)

BASE = ("partition", "--cohort", "{cohort}", "--out", "{out}", "--hospitals", "3")
STATIC, LABELS, SERIES = "{cohort}/static.parquet", "{cohort}/labels.parquet", \
    "{cohort}/timeseries.parquet"
MANIFEST = "{cohort}/manifest.json"
FEATURES = ("heart_rate", "sbp", "creatinine", "lactate", "vasopressor", "urine_output")
SLOW = (pytest.mark.slow,)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_cohort(tmp_path_factory.mktemp("fuzz-partition") / "cohort", n_patients=40,
                         seed=0).path


def workspace(pristine: Path, root: Path) -> Workspace:
    cohort = copy_into(root, pristine, "cohort")
    return Workspace(root, {"cohort": cohort, "out": root / "fed", "pristine": pristine},
                     inputs=["cohort"], outputs=["out"])


# --- expected results --------------------------------------------------------------------

_REFERENCES: dict[str, dict[str, Any]] = {}
MANIFEST_FIELDS = ("features", "labels", "static", "n_bins", "bin_hours", "counts", "prevalence")


def read_federation(fed: Path) -> dict[str, Any]:
    """Every split file and the data-describing fields of every manifest."""
    content: dict[str, Any] = {}
    for hospital in sorted(fed.glob("hospital_*")):
        manifest = json.loads((hospital / "manifest.json").read_text())
        content[f"{hospital.name}/manifest"] = {k: manifest[k] for k in MANIFEST_FIELDS}
        for split in ("train", "val", "test"):
            content[f"{hospital.name}/{split}"] = pl.read_parquet(hospital / f"{split}.parquet")
    return content


def same_federation(*clean: Mutation, key: str = "pristine") -> Callable[..., None]:
    """Check: the federation equals the one partitioned (by the library) from the fixture after
    the clean mutations ``clean``, with the same options (--hospitals 3, seed 0)."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        if key not in _REFERENCES:
            with tempfile.TemporaryDirectory() as tmp:
                ref = workspace(ws.paths["pristine"], Path(tmp))
                for mutation in clean:
                    mutation(ref)
                partition(ref.paths["cohort"], ref.paths["out"], hospitals=3, seed=0)
                _REFERENCES[key] = read_federation(ref.paths["out"])
        got, want = read_federation(ws.paths["out"]), _REFERENCES[key]
        assert got.keys() == want.keys()
        for name, value in want.items():
            same = got[name].equals(value) if isinstance(value, pl.DataFrame) else \
                got[name] == value
            assert same, name
    return check


def units_per_hospital(expected: set[str]) -> Callable[..., None]:
    """Check (--scheme careunit): each hospital holds exactly one of the ``expected`` units."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        units = []
        for hospital in sorted(ws.paths["out"].glob("hospital_*")):
            frames = [pl.read_parquet(hospital / f"{s}.parquet") for s in ("train", "val", "test")]
            held = set(pl.concat(frames)["first_careunit"].to_list())
            assert len(held) == 1, held
            units += held
        assert set(units) == expected
    return check


def static_value(column: str, value: Any) -> Callable[..., None]:
    """Check: every hospital file carries ``value`` in static ``column`` (passed through)."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        files = sorted(ws.paths["out"].glob("hospital_*/*.parquet"))
        assert len(files) == 9
        values = pl.concat([pl.read_parquet(f).select(column) for f in files])[column]
        assert values.len() > 0 and set(values.to_list()) == {value}
    return check


# --- the catalogue -----------------------------------------------------------------------


def fails(case_id: str, *mutate: Mutation, error: tuple[str, ...], args: tuple[str, ...] = (),
          base: tuple[str, ...] = BASE, marks: tuple[Any, ...] = ()) -> Case:
    return Case(case_id, (*base, *args), mutate, error=error, marks=marks)


def works(case_id: str, *mutate: Mutation, check: Callable[..., None],
          args: tuple[str, ...] = (), slow: bool = False, marks: tuple[Any, ...] = ()) -> Case:
    return Case(case_id, (*BASE, *args), mutate, check=check, marks=(*marks, *SLOW[:slow]))


def _col(frame: pl.DataFrame, name: str, expr: pl.Expr) -> pl.DataFrame:
    return frame.with_columns(expr.alias(name))


def file_cases() -> list[Case]:
    """Missing, empty, truncated and corrupt cohort files; malformed manifests."""
    cases = [fails(f"{name}-missing", remove(f"{{cohort}}/{name}"),
                   error=("--cohort {cohort}", f"missing {name}"))
             for name in ("manifest.json", "static.parquet", "labels.parquet",
                          "timeseries.parquet")]
    for path in (STATIC, LABELS, SERIES):
        name = Path(path).stem
        cases += [
            fails(f"{name}-zero-bytes", write_file(path, b""), error=(path, "not a readable")),
            fails(f"{name}-not-parquet", write_file(path, "stay_id,bin\n1,0\n"),
                  error=(path, "not a readable")),
            fails(f"{name}-truncated-half", truncate(path, 0.5), error=(path, "not a readable")),
            fails(f"{name}-last-byte-cut", truncate(path, -1), error=(path, "not a readable")),
            fails(f"{name}-corrupt-footer", flip_byte(path, -6), error=(path, "not a readable")),
        ]
    bad_json = {
        "zero-bytes": b"", "truncated": b'{"features": [', "not-json": b"features: all",
        "a-list": b"[1, 2]", "a-string": b'"manifest"',
    }
    cases += [fails(f"manifest-{name}", write_file(MANIFEST, data), error=(MANIFEST,))
              for name, data in bad_json.items()]
    cases.append(fails("manifest-binary", write_file(MANIFEST, b"\xff\xfe\x00garbage"),
                       error=(MANIFEST,)))
    cases += [fails(f"manifest-without-{key}", edit_json(MANIFEST, without_key(key)),
                    error=(MANIFEST, f"'{key}'"))
              for key in ("features", "labels", "static", "n_bins", "bin_hours")]
    wrong = {
        "n_bins-text": {"n_bins": "4"}, "n_bins-0": {"n_bins": 0}, "n_bins-true": {"n_bins": True},
        "n_bins-float": {"n_bins": 4.5}, "bin_hours-negative": {"bin_hours": -2},
        "bin_hours-nan-text": {"bin_hours": "NaN"}, "features-empty": {"features": []},
        "features-names-not-text": {"features": [{"name": 1, "group": "vitals"}]},
        "feature-group-static": {"features": [{"name": "heart_rate", "group": "static"}]},
        "feature-without-group": {"features": [{"name": "heart_rate"}]},
        "features-repeated": {"features": [{"name": "sbp", "group": "vitals"}] * 2},
        "labels-empty": {"labels": []}, "labels-not-records": {"labels": ["sepsis"]},
        "static-not-a-list": {"static": "age"},
    }
    cases += [fails(f"manifest-{name}", edit_json(MANIFEST, with_values(**values)),
                    error=(MANIFEST, "malformed manifest"))
              for name, values in wrong.items()]
    cases += [
        fails("manifest-n_bins-mismatch", edit_json(MANIFEST, with_values(n_bins=5)),
              error=(SERIES, "complete grid")),
        fails("manifest-unknown-feature", edit_json(MANIFEST, with_values(
            features=[{"name": "nope", "group": "vitals"}])), error=(SERIES, "nope")),
        fails("manifest-unknown-label", edit_json(MANIFEST, with_values(
            labels=[{"name": "scurvy"}])), error=(LABELS, "scurvy")),
        fails("manifest-is-a-directory", remove(MANIFEST), lambda ws: ws.path(MANIFEST).mkdir(),
              error=("--cohort {cohort}", "manifest.json")),
    ]
    return cases


def static_cases() -> list[Case]:
    """static.parquet: every column missing or renamed, wrong types, NULLs, repeats, no rows."""
    cases = []
    for col in STATIC_COLUMNS:
        cases += [
            fails(f"static.{col}-missing", edit_parquet(STATIC, lambda f, c=col: f.drop(c)),
                  error=(STATIC, col)),
            fails(f"static.{col}-renamed",
                  edit_parquet(STATIC, lambda f, c=col: f.rename({c: f"{c}_x"})),
                  error=(STATIC, col)),
        ]
    as_text = {"stay_id": "an integer", "subject_id": "an integer", "intime": "a timestamp",
               "age": "numeric", "los_hours": "numeric", "weight_kg": "numeric"}
    cases += [fails(f"static.{col}-as-text",
                    edit_parquet(STATIC, lambda f, c=col: _col(f, c, pl.col(c).cast(pl.String))),
                    error=(STATIC, f"column {col}", kind))
              for col, kind in as_text.items()]
    cases += [fails(f"static.{col}-null", edit_parquet(STATIC, lambda f, c=col: _col(
                  f, c, pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col(c)))),
                  error=(STATIC, f"column {col} has NULL"))
              for col in ("stay_id", "subject_id", "intime")]
    bad_numbers = {"age-inf": ("age", float("inf")), "age-nan": ("age", float("nan")),
                   "los_hours-nan": ("los_hours", float("nan")),
                   "weight_kg--inf": ("weight_kg", float("-inf"))}
    cases += [fails(f"static.{name}", edit_parquet(STATIC, lambda f, c=c, v=v: _col(
                  f, c, pl.when(pl.int_range(pl.len()) == 0).then(v).otherwise(pl.col(c)))),
                  error=(STATIC, f"column {c}", "NaN or infinite"))
              for name, (c, v) in bad_numbers.items()]
    cases += [
        fails("static.stay_id-repeated", edit_parquet(STATIC, lambda f: _col(
            f, "stay_id", pl.when(pl.int_range(pl.len()) == 1).then(pl.col("stay_id").first())
            .otherwise(pl.col("stay_id")))), error=(STATIC, "stay_id is not unique")),
        fails("static-no-rows", edit_parquet(STATIC, lambda f: f.head(0)),
              error=(STATIC, "no stays")),
        fails("static-first_careunit-as-numbers", edit_parquet(STATIC, lambda f: _col(
            f, "first_careunit", pl.int_range(pl.len()))), args=("--scheme", "careunit"),
            error=(STATIC, "first_careunit")),
        works("static-huge-and-negative-numbers", edit_parquet(STATIC, lambda f: f.with_columns(
            pl.lit(1e300).alias("age"), pl.lit(-5.0).alias("los_hours"))),
            check=static_value("age", 1e300), slow=True),
    ]
    return cases


def label_cases() -> list[Case]:
    """labels.parquet: missing columns, values other than 0/1, rows not matching static."""
    cases = [fails(f"labels.{name}-missing", edit_parquet(LABELS, lambda f, c=name: f.drop(c)),
                   error=(LABELS, name))
             for name in ("stay_id", "subject_id", *LABEL_NAMES)]

    def first_row(col: str, value: Any, dtype: Any = pl.Int8) -> Mutation:
        return edit_parquet(LABELS, lambda f: _col(f, col, pl.when(pl.int_range(pl.len()) == 0)
                                                   .then(pl.lit(value, dtype)).otherwise(
                                                       pl.col(col))))
    cases += [
        fails("labels-value-2", first_row("sepsis", 2), error=(LABELS, "0/1")),
        fails("labels-value-negative", first_row("sepsis", -1), error=(LABELS, "0/1")),
        fails("labels-value-null", first_row("sepsis", None), error=(LABELS, "0/1")),
        fails("labels-as-text", edit_parquet(LABELS, lambda f: _col(
            f, "sepsis", pl.col("sepsis").cast(pl.String))), error=(LABELS, "column sepsis")),
        fails("labels-extra-row", edit_parquet(LABELS, lambda f: pl.concat([f, f.head(1)])),
              error=(LABELS, "rows")),
        fails("labels-missing-row", edit_parquet(LABELS, lambda f: f.slice(1)),
              error=(LABELS, "rows")),
        fails("labels-other-stay", first_row("stay_id", 1, pl.Int64),
              error=(LABELS, "stay ids differ")),
        fails("labels-other-subject", first_row("subject_id", 1, pl.Int64),
              error=(LABELS, "subject_id differs")),
        works("labels-as-booleans", edit_parquet(LABELS, lambda f: f.with_columns(
            pl.col(list(LABEL_NAMES)).cast(pl.Boolean))), check=same_federation(), slow=True),
    ]
    return cases


def series_cases() -> list[Case]:
    """timeseries.parquet: missing columns, bad types, an incomplete or repeated grid, NaN/inf."""
    cases = [fails(f"timeseries.{name}-missing", edit_parquet(SERIES, lambda f, c=name: f.drop(c)),
                   error=(SERIES, name))
             for name in ("stay_id", "bin", *FEATURES, *(f"{f}_mask" for f in FEATURES))]

    def cell(col: str, value: Any, dtype: Any) -> Mutation:
        return edit_parquet(SERIES, lambda f: _col(f, col, pl.when(
            pl.int_range(pl.len()) == 0).then(pl.lit(value, dtype)).otherwise(pl.col(col))))
    observed = edit_parquet(SERIES, lambda f: _col(f, "heart_rate_mask", pl.lit(1, pl.UInt8)))
    cases += [
        fails("timeseries-value-as-text", edit_parquet(SERIES, lambda f: _col(
            f, "sbp", pl.col("sbp").cast(pl.String))), error=(SERIES, "column sbp")),
        fails("timeseries-bin-as-text", edit_parquet(SERIES, lambda f: _col(
            f, "bin", pl.col("bin").cast(pl.String))), error=(SERIES, "column bin")),
        fails("timeseries-mask-2", cell("heart_rate_mask", 2, pl.UInt8), error=(SERIES, "0/1")),
        fails("timeseries-mask-null", cell("heart_rate_mask", None, pl.UInt8),
              error=(SERIES, "NULL")),
        fails("timeseries-row-repeated", edit_parquet(SERIES, lambda f: pl.concat(
            [f.head(1), f.slice(2)])), error=(SERIES, "complete grid")),
        fails("timeseries-row-missing", edit_parquet(SERIES, lambda f: f.slice(1)),
              error=(SERIES, "complete grid")),
        fails("timeseries-bin-out-of-range", cell("bin", 99, pl.Int16),
              error=(SERIES, "complete grid")),
        fails("timeseries-unknown-stay", cell("stay_id", 1, pl.Int64),
              error=(SERIES, "complete grid")),
        fails("timeseries-inf-observed", observed, cell("heart_rate", float("inf"), pl.Float32),
              error=(SERIES, "column heart_rate", "infinite")),
        fails("timeseries-nan-observed", observed, cell("heart_rate", float("nan"), pl.Float32),
              error=(SERIES, "column heart_rate", "NaN")),
        fails("timeseries-beyond-float32", observed, edit_parquet(SERIES, lambda f: _col(
            f, "heart_rate", pl.col("heart_rate").cast(pl.Float64) * 1e300)),
              error=(SERIES, "column heart_rate", "beyond-float32")),
        works("timeseries-rows-shuffled", edit_parquet(SERIES, lambda f: f.sample(
            fraction=1.0, shuffle=True, seed=1)), check=same_federation()),
        works("timeseries-float64-values", edit_parquet(SERIES, lambda f: f.with_columns(
            pl.col(list(FEATURES)).cast(pl.Float64))), check=same_federation(), slow=True),
        works("static-and-labels-shuffled", edit_parquet(STATIC, lambda f: f.reverse()),
              edit_parquet(LABELS, lambda f: f.sample(fraction=1.0, shuffle=True, seed=2)),
              check=same_federation(), slow=True),
    ]
    return cases


UNITS = {"Medical Intensive Care Unit (MICU)": 'Médical 🏥 "A", 1',
         "Surgical Intensive Care Unit (SICU)": "Chirurgie\nligne 2 — ü",
         "Coronary Care Unit (CCU)": "[CCU] [/b] 心臓"}


def unicode_cases() -> list[Case]:
    """Unicode, emoji, quotes, newlines and brackets in the free-text static columns."""
    rename_units = edit_parquet(STATIC, lambda f: f.with_columns(
        pl.col("first_careunit").replace(UNITS)))
    return [
        works("unicode-careunits", rename_units, args=("--scheme", "careunit"),
              check=units_per_hospital(set(UNITS.values()))),
        works("unicode-insurance", edit_parquet(STATIC, lambda f: f.with_columns(
            pl.lit("Privé 🙂 «x»").alias("insurance"))),
            check=static_value("insurance", "Privé 🙂 «x»")),
    ]


def location_cases() -> list[Case]:
    """Paths with spaces and unicode, read-only inputs, unusable --out locations."""
    return [
        works("paths-with-spaces-and-unicode", place("cohort", "my cohort ü 🙂/c"),
              place("out", "fed é 1"), check=same_federation()),
        works("read-only-input", readonly_view("cohort"), check=same_federation(), slow=True),
        fails("out-parent-read-only", tmpfs("ro", readonly=True), place("out", "ro/fed"),
              error=("--out {out}", "not writable")),
        fails("disk-full", tmpfs("full", size="16k"), place("out", "full/fed"),
              error=("--out {out}", "No space left on device")),
        fails("out-is-a-file", write_file("{out}", "x"), error=("--out {out}", "not a directory")),
        fails("out-parent-missing", place("out", "nowhere/fed"),
              error=("--out {out}", "does not exist")),
        fails("out-not-empty", write_file("{out}/mine.txt", "keep"),
              error=("--out {out}", "--overwrite")),
        fails("out-is-the-cohort", base=("partition", "--cohort", "{cohort}", "--out",
                                         "{cohort}", "--hospitals", "3", "--overwrite"),
              error=("--out {cohort}", "--cohort")),
        fails("out-inside-the-cohort", place("out", "cohort/fed"),
              error=("--out {out}", "--cohort")),
        fails("cohort-missing", remove("{cohort}"), error=("--cohort {cohort}", "not found")),
        fails("cohort-is-a-file", remove("{cohort}"), write_file("{cohort}", "x"),
              error=("--cohort {cohort}", "not found")),
    ]


def option_cases() -> list[Case]:
    """Out-of-range, conflicting and ill-typed options."""
    bare = ("partition", "--cohort", "{cohort}", "--out", "{out}")
    bad = [
        ("hospitals-0", ("--hospitals", "0"), "--hospitals 0"),
        ("hospitals-negative", ("--hospitals", "-2"), "--hospitals -2"),
        ("hospitals-more-than-patients", ("--hospitals", "41"), "--hospitals 41"),
        ("hospitals-huge", ("--hospitals", "100000000000000000000"), "--hospitals"),
        ("hospitals-missing", (), "--hospitals"),
        ("hospitals-not-a-number", ("--hospitals", "three"), "--hospitals"),
        ("alpha-0", ("--hospitals", "3", "--alpha", "0"), "--alpha 0"),
        ("alpha-negative", ("--hospitals", "3", "--alpha", "-1"), "--alpha -1"),
        ("alpha-nan", ("--hospitals", "3", "--alpha", "nan"), "--alpha nan"),
        ("alpha-inf", ("--hospitals", "3", "--alpha", "inf"), "--alpha inf"),
        ("scheme-unknown", ("--hospitals", "3", "--scheme", "random"), "--scheme random"),
        ("careunit-more-hospitals-than-units", ("--hospitals", "4", "--scheme", "careunit"),
         "--hospitals 4"),
        ("split-two-parts", ("--hospitals", "3", "--split", "0.5,0.5"), "--split"),
        ("split-text", ("--hospitals", "3", "--split", "a,b,c"), "--split"),
        ("split-not-summing-to-1", ("--hospitals", "3", "--split", "0.7,0.2,0.2"), "--split"),
        ("split-negative", ("--hospitals", "3", "--split", "-0.1,0.6,0.5"), "--split"),
        ("split-nan", ("--hospitals", "3", "--split", "nan,0.5,0.5"), "--split"),
        ("seed-negative", ("--hospitals", "3", "--seed", "-1"), "--seed -1"),
        ("iid-with-scheme", ("--hospitals", "3", "--iid", "--scheme", "careunit"), "--scheme"),
        ("vertical-with-scheme", ("--vertical", "--scheme", "careunit"), "--scheme"),
        ("vertical-hospitals-mismatch", ("--vertical", "--hospitals", "2"), "--hospitals 2"),
        ("vertical-label-party-7", ("--vertical", "--label-party", "7"), "--label-party 7"),
        ("vertical-label-party-negative", ("--vertical", "--label-party", "-1"),
         "--label-party -1"),
        ("feature-groups-unknown", ("--vertical", "--feature-groups", "vitals;genes"),
         "--feature-groups"),
        ("feature-groups-empty", ("--vertical", "--feature-groups", ""), "--feature-groups"),
        ("feature-groups-empty-party", ("--vertical", "--feature-groups", "vitals;"),
         "--feature-groups"),
        ("feature-groups-repeated", ("--vertical", "--feature-groups", "vitals;vitals,labs"),
         "--feature-groups"),
        ("feature-groups-without-vertical", ("--hospitals", "3", "--feature-groups", "vitals"),
         "--feature-groups"),
    ]
    return [fails(f"option-{name}", args=args, base=bare, error=(option,))
            for name, args, option in bad]


CASES = [
    *file_cases(), *static_cases(), *label_cases(), *series_cases(), *unicode_cases(),
    *location_cases(), *option_cases(),
    Case("subprocess-manifest-not-json", BASE, (write_file(MANIFEST, "{"),),
         error=(MANIFEST, "not valid JSON"), subprocess=True, marks=SLOW),
]


@pytest.mark.parametrize("case", params(CASES))
def test_partition(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
