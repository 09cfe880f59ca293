"""Hostile inputs for `crypten-fl prepare`, see helpers/fuzz.py.

`prepare` reads a cohort with the partition code, so every damaged cohort of
test_fuzz_partition.py that `partition` must refuse is given to `prepare` too (same workspace,
same error); then the cases of its own: unusable --out locations, --hospital, --split, --seed,
--overwrite. A correct run must write the hospital directory `partition --hospitals 1 --iid`
writes with the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import test_fuzz_partition as partition_suite
from crypten_fl.mimic_etl.partition.pipeline import partition
from helpers.cohort_fixture import random_cohort
from helpers.fuzz import (
    Case,
    Outcome,
    Workspace,
    edit_json,
    edit_parquet,
    params,
    place,
    readonly_view,
    remove,
    run_case,
    tmpfs,
    with_values,
    write_file,
)

BASE = ("prepare", "--cohort", "{cohort}", "--out", "{out}")
SPLITS = ("train", "val", "test")
SLOW = (pytest.mark.slow,)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_cohort(tmp_path_factory.mktemp("fuzz-prepare") / "cohort", n_patients=40,
                         seed=0).path


_REFERENCE: dict[str, Any] = {}


def read_site(site: Path) -> dict[str, Any]:
    """Every split file and the data-describing fields (schema included) of the manifest."""
    manifest = json.loads((site / "manifest.json").read_text())
    fields = (*partition_suite.MANIFEST_FIELDS, "schema", "schema_sha256")
    content: dict[str, Any] = {"manifest": {k: manifest[k] for k in fields}}
    content |= {s: pl.read_parquet(site / f"{s}.parquet") for s in SPLITS}
    return content


def same_site(hospital: int = 0) -> Callable[[Workspace, Outcome], None]:
    """Check: the output is partition's hospital_0 of the pristine cohort (--hospitals 1 --iid,
    seed 0), and its manifest names hospital ``hospital``."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        if "site" not in _REFERENCE:
            with tempfile.TemporaryDirectory() as tmp:
                partition(ws.paths["pristine"], Path(tmp) / "fed", hospitals=1, iid=True,
                          seed=0)
                _REFERENCE["site"] = read_site(Path(tmp) / "fed" / "hospital_0")
        out = ws.paths["out"]
        got, want = read_site(out), _REFERENCE["site"]
        assert got.keys() == want.keys()
        for name, value in want.items():
            same = got[name].equals(value) if isinstance(value, pl.DataFrame) else \
                got[name] == value
            assert same, name
        assert json.loads((out / "manifest.json").read_text())["hospital"] == hospital
        assert "schema fingerprint" in outcome.stdout
    return check


def fails(case_id: str, *mutate: Any, error: tuple[str, ...], args: tuple[str, ...] = (),
          marks: tuple[Any, ...] = ()) -> Case:
    return Case(case_id, (*BASE, *args), mutate, error=error, marks=marks)


def works(case_id: str, *mutate: Any, check: Callable[..., None], args: tuple[str, ...] = (),
          slow: bool = False) -> Case:
    return Case(case_id, (*BASE, *args), mutate, check=check, marks=SLOW[:slow])


def cohort_cases() -> list[Case]:
    """Partition's damaged cohorts that it refuses with its plain command line."""
    cases = [*partition_suite.file_cases(), *partition_suite.static_cases(),
             *partition_suite.label_cases(), *partition_suite.series_cases()]
    return [dataclasses.replace(case, args=BASE) for case in cases
            if case.error is not None and case.args == partition_suite.BASE]


def own_cases() -> list[Case]:
    """Locations, options and --overwrite of `prepare` itself."""
    earlier_prepare = edit_json("{out}/manifest.json", with_values(hospital=7))
    return [
        works("plain", check=same_site()),
        works("out-named-hospital_3", place("out", "fed/hospital_3"),
              lambda ws: ws.paths["out"].parent.mkdir(), check=same_site(3)),
        works("hospital-option", args=("--hospital", "5"), check=same_site(5)),
        works("paths-with-spaces-and-unicode", place("cohort", "my cohort ü 🙂/c"),
              place("out", "site é 1"), check=same_site()),
        works("read-only-input", readonly_view("cohort"), check=same_site(), slow=True),
        works("overwrite-an-earlier-prepare", _prepared_before, earlier_prepare,
              args=("--overwrite",), check=same_site()),
        fails("out-exists-without-overwrite", _prepared_before,
              error=("--out {out}", "--overwrite")),
        fails("out-not-empty", write_file("{out}/mine.txt", "keep"), args=("--overwrite",),
              error=("--out {out}", "not a directory written by crypten-fl")),
        fails("out-written-by-partition", _partitioned_before, args=("--overwrite",),
              error=("--out {out}", "written by `crypten-fl partition`")),
        fails("out-is-a-file", write_file("{out}", "x"), error=("--out {out}", "not a directory")),
        fails("out-parent-missing", place("out", "nowhere/site"),
              error=("--out {out}", "does not exist")),
        fails("out-parent-read-only", tmpfs("ro", readonly=True), place("out", "ro/site"),
              error=("--out {out}", "not writable")),
        fails("disk-full", tmpfs("full", size="16k"), place("out", "full/site"),
              error=("--out {out}", "No space left on device")),
        fails("out-is-the-cohort", place("out", "cohort"), args=("--overwrite",),
              error=("--out {out}", "--cohort")),
        fails("out-inside-the-cohort", place("out", "cohort/site"),
              error=("--out {out}", "--cohort")),
        fails("out-contains-the-cohort", place("cohort", "site/cohort"), place("out", "site"),
              args=("--overwrite",), error=("--out {out}", "--cohort")),
        fails("cohort-missing", remove("{cohort}"), error=("--cohort {cohort}", "not found")),
        fails("cohort-is-a-file", remove("{cohort}"), write_file("{cohort}", "x"),
              error=("--cohort {cohort}", "not found")),
        fails("cohort-without-static-column", edit_parquet(
            "{cohort}/static.parquet", lambda f: f.drop("first_careunit", "age")),
            error=("{cohort}/static.parquet", "missing column(s) age, first_careunit")),
        fails("cohort-is-a-federation", _cohort_is_a_federation,
              error=("--cohort {cohort}", "missing manifest.json")),
        fails("hospital-negative", args=("--hospital", "-1"), error=("--hospital -1",)),
        fails("hospital-not-a-number", args=("--hospital", "two"), error=("--hospital",)),
        fails("hospital-disagrees-with-out", place("out", "hospital_1"), args=("--hospital", "2"),
              error=("--hospital 2", "--out {out}", "hospital 1")),
        fails("split-no-training", args=("--split", "0,0.5,0.5"),
              error=("--split 0,0.5,0.5", "no patient", "for training")),
        fails("split-two-parts", args=("--split", "0.5,0.5"), error=("--split",)),
        fails("split-text", args=("--split", "a,b,c"), error=("--split",)),
        fails("split-not-summing-to-1", args=("--split", "0.7,0.2,0.2"), error=("--split",)),
        fails("split-nan", args=("--split", "nan,0.5,0.5"), error=("--split",)),
        fails("seed-negative", args=("--seed", "-1"), error=("--seed -1",)),
        fails("seed-not-a-number", args=("--seed", "x"), error=("--seed",)),
    ]


def _prepared_before(ws: Workspace) -> None:
    from crypten_fl.mimic_etl.partition import prepare

    prepare(ws.paths["pristine"], ws.paths["out"], seed=3)


def _partitioned_before(ws: Workspace) -> None:
    partition(ws.paths["pristine"], ws.paths["out"], hospitals=1, iid=True, seed=0)


def _cohort_is_a_federation(ws: Workspace) -> None:
    partition(ws.paths["pristine"], ws.root / "fed-in", hospitals=2, seed=0)
    ws.paths["cohort"] = ws.root / "fed-in"


CASES = [
    *cohort_cases(), *own_cases(),
    Case("subprocess-manifest-not-json", BASE,
         (write_file(partition_suite.MANIFEST, "{"),),
         error=(partition_suite.MANIFEST, "not valid JSON"), subprocess=True, marks=SLOW),
]


@pytest.mark.parametrize("case", params(CASES))
def test_prepare(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, partition_suite.workspace(pristine, tmp_path))
