"""Hostile inputs for `extract --meds-dir` and `synth --format meds`, see helpers/fuzz.py.

The input is a small synthetic MEDS dataset (`synth --format meds`). A damaged dataset (no data/,
a shard that is not parquet, a missing or mistyped column, events out of order, no ICU stay, bad
metadata, a bad mapping folder) must give one error line naming it, no output and untouched
inputs; codes that map to nothing are reported with their counts and the cohort is still written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from crypten_fl.mimic_etl.extract.meds import DEFAULT_MAPPING
from crypten_fl.mimic_etl.synth import generate
from helpers.fuzz import (
    Case,
    Outcome,
    Workspace,
    copy_into,
    edit_parquet,
    params,
    remove,
    run_case,
    tmpfs,
    truncate,
    write_file,
)

SHARD = "{meds}/data/train/0.parquet"
BASE = ("extract", "--meds-dir", "{meds}", "--out", "{out}", "--threads", "1")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz-meds") / "meds"
    generate(out, 8, seed=5, format="meds")
    return out


def workspace(pristine: Path, root: Path) -> Workspace:
    meds = copy_into(root, pristine, "meds")
    return Workspace(root, {"meds": meds, "out": root / "cohort", "pristine": pristine,
                            "mapping": root / "mapping"},
                     inputs=["meds"], outputs=["out"])


def unmapped(code: str) -> object:
    """Check: a cohort was written and its manifest reports ``code`` with its event count."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        source = json.loads((ws.paths["out"] / "manifest.json").read_text())["source"]
        events = pl.read_parquet(ws.path(SHARD)).filter(pl.col("code") == code).height
        assert events > 0
        assert (source["unmapped_codes"], source["unmapped_events"]) == (1, events)
        assert source["most_frequent_unmapped"] == [{"code": code, "events": events}]
        assert "map to nothing" in outcome.stdout
        assert "without an ICU stay" in outcome.stdout
    return check


def rename_codes(pattern: str, new: str) -> object:
    return edit_parquet(SHARD, lambda f: f.with_columns(pl.col("code").str.replace(pattern, new)))


def copy_mapping(ws: Workspace) -> None:
    """Put a copy of the default mapping at {mapping} (to be damaged)."""
    shutil.copytree(DEFAULT_MAPPING, ws.paths["mapping"])


def fails(case_id: str, *mutate: object, error: tuple[str, ...],
          args: tuple[str, ...] = BASE) -> Case:
    return Case(case_id, args, mutate, error=error)  # type: ignore[arg-type]


CASES = [
    fails("no-meds-dir", remove("{meds}"), error=("--meds-dir {meds}", "not found")),
    fails("no-data-folder", remove("{meds}/data"), error=("--meds-dir {meds}", "data/")),
    fails("no-shards", remove("{meds}/data/train"), remove("{meds}/data/held_out"),
          error=("{meds}/data", "no .parquet")),
    fails("shard-not-parquet", write_file(SHARD, "subject_id,time\n1,2\n"),
          error=(SHARD, "parquet")),
    fails("shard-truncated", truncate(SHARD, 0.5), error=(SHARD,)),
    *[fails(f"missing-{c}", edit_parquet(SHARD, lambda f, c=c: f.drop(c)),
            error=(SHARD, c)) for c in ("subject_id", "time", "code", "numeric_value")],
    *[fails(f"{c}-as-{t}".replace("_", "-"),
            edit_parquet(SHARD, lambda f, c=c, d=d: f.with_columns(pl.col(c).cast(d))),
            error=(SHARD, c))
      for c, t, d in (("numeric_value", "text", pl.String), ("time", "text", pl.String),
                      ("subject_id", "float", pl.Float64), ("stay_id", "text", pl.String))],
    fails("times-out-of-order", edit_parquet(SHARD, lambda f: f.reverse()),
          error=(SHARD, "out of order")),
    fails("subjects-out-of-order",
          edit_parquet(SHARD, lambda f: f.sort("subject_id", descending=True, maintain_order=True)),
          error=(SHARD, "out of order")),
    fails("no-icu-stay", edit_parquet(SHARD, lambda f: f.filter(~pl.col("code").str.starts_with(
        "ICU_"))), edit_parquet("{meds}/data/held_out/0.parquet", lambda f: f.filter(
            ~pl.col("code").str.starts_with("ICU_"))), error=("--meds-dir", "no ICU stay")),
    fails("metadata-not-json", write_file("{meds}/metadata/dataset.json", "{not json"),
          error=("{meds}/metadata/dataset.json",)),
    fails("both-inputs", error=("--mimic-dir", "--meds-dir"),
          args=(*BASE, "--mimic-dir", "{meds}")),
    fails("mapping-missing", error=("--meds-mapping {mapping}", "not found"),
          args=(*BASE, "--meds-mapping", "{mapping}")),
    fails("mapping-without-codes", write_file("{mapping}/admissions.sql", "SELECT 1"),
          error=("--meds-mapping {mapping}", "codes.csv"),
          args=(*BASE, "--meds-mapping", "{mapping}")),
    fails("mapping-sql-broken", copy_mapping,
          write_file("{mapping}/icustays.sql", "SELECT no_such_column FROM meds_events"),
          error=("{mapping}/icustays.sql",), args=(*BASE, "--meds-mapping", "{mapping}")),
    fails("mapping-sql-missing", copy_mapping, remove("{mapping}/labevents.sql"),
          error=("--meds-mapping {mapping}", "labevents.sql"),
          args=(*BASE, "--meds-mapping", "{mapping}")),
    fails("mapping-with-mimic-dir", error=("--meds-mapping",),
          args=("extract", "--mimic-dir", "{meds}", "--out", "{out}", "--meds-mapping",
                "{meds}")),
    Case("unmapped-codes-reported", BASE, (rename_codes("^HOSPITAL_DISCHARGE//.*", "XYZ//1"),),
         check=unmapped("XYZ//1")),
    Case("synth-meds-disk-full", ("synth", "--out", "{out}", "--patients", "3", "--format",
                                  "meds"), (tmpfs("full", size="64k"),
                                            lambda ws: ws.paths.update(out=ws.root / "full/m")),
         error=("--out {out}",)),
    fails("synth-format-unknown", error=("--format xml",),
          args=("synth", "--out", "{out}", "--patients", "3", "--format", "xml")),
    Case("subprocess-shard-truncated", BASE, (truncate(SHARD, 0.3),), error=(SHARD,),
         subprocess=True),
]


@pytest.mark.parametrize("case", params(CASES))
def test_extract_meds(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
