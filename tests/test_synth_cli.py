"""`crypten-fl synth` through the CLI: a table and JSON on success; one error line otherwise,
with a non-zero exit code and nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.outdir import write_marker
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["synth", *args])


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_success_prints_rows_per_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "mimic"
    result = invoke("--out", str(out), "--patients", "12", "--seed", "3", "--version", "2.2")
    assert result.exit_code == 0, result.output
    assert "icu/chartevents.csv.gz" in result.output and "hosp/labevents.csv.gz" in result.output
    assert "synth_summary.json" in result.output
    record = json.loads((out / "synth_summary.json").read_text())
    assert record["version"] == "2.2"
    assert record["rows"]["icustays"] == record["icu_stays"]
    assert record["icu_patients"] == 12 and record["icu_stays"] >= 12
    assert sorted(p.name for p in (out / "icu").iterdir()) == [
        "chartevents.csv.gz", "d_items.csv.gz", "icustays.csv.gz", "outputevents.csv.gz"]
    assert _leftovers(tmp_path) == ["mimic"]


def test_overwrite_replaces_a_previous_release(tmp_path: Path) -> None:
    out = tmp_path / "mimic"
    out.mkdir()
    (out / "old.txt").write_text("old")
    write_marker(out, "synth", ["old.txt"])
    result = invoke("--out", str(out), "--patients", "5", "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "old.txt").exists() and (out / "hosp" / "patients.csv.gz").exists()
    assert _leftovers(tmp_path) == ["mimic"]


@pytest.mark.parametrize("args, message", [
    (["--patients", "0"], "--patients 0: must be at least 1"),
    (["--patients", "-3"], "--patients -3: must be at least 1"),
    (["--patients", "5", "--version", "3.0"], "--version 3.0: must be one of 2.2, 3.1"),
    (["--patients", "5", "--seed", "-1"], "--seed -1: must be 0 or more"),
    (["--patients", "600000"], "--patients 600000: at most 500,000 are supported"),
])
def test_bad_options_give_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("--out", str(tmp_path / "mimic"), *args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {message}"]
    assert _leftovers(tmp_path) == []


def test_non_empty_out_without_overwrite_is_refused_and_untouched(tmp_path: Path) -> None:
    out = tmp_path / "mimic"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = invoke("--out", str(out), "--patients", "5")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: --out {out}:")
    assert "not empty" in lines[0]
    assert _leftovers(tmp_path) == ["mimic"] and _leftovers(out) == ["keep.txt"]


def test_out_whose_parent_is_missing_is_refused(tmp_path: Path) -> None:
    result = invoke("--out", str(tmp_path / "no" / "such" / "dir"), "--patients", "5")
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: --out")
    assert _leftovers(tmp_path) == []
