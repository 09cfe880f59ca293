"""`crypten-fl partition` through the CLI: output, and one clear error line for bad input."""

from __future__ import annotations

import json

import pytest
from crypten_fl.cli.app import app
from helpers.cohort_fixture import random_cohort
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return random_cohort(tmp_path_factory.mktemp("c") / "cohort", n_patients=12, seed=6)


def invoke(*args: str):
    return runner.invoke(app, ["partition", *args], env={"COLUMNS": "200"})


def test_success_prints_table_and_json(cohort, tmp_path):
    out = tmp_path / "fed"
    result = invoke(
        "--cohort", str(cohort.path), "--out", str(out), "--hospitals", "2", "--seed", "3"
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "partition.json").read_text())
    assert record["scheme"] == "dirichlet" and record["parameters"]["alpha"] == 0.5
    assert record["seed"] == 3
    assert f"mean JS divergence {record['mean_js_divergence']:.4f}" in result.stdout
    assert f"machine-readable: {out / 'partition.json'}" in result.stdout


def test_iid_and_vertical(cohort, tmp_path):
    result = invoke(
        "--cohort",
        str(cohort.path),
        "--out",
        str(tmp_path / "a"),
        "--hospitals",
        "3",
        "--iid",
        "--split",
        "0.6,0.2,0.2",
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "a" / "partition.json").read_text())
    assert record["scheme"] == "iid" and record["parameters"]["split"] == [0.6, 0.2, 0.2]
    result = invoke(
        "--cohort",
        str(cohort.path),
        "--out",
        str(tmp_path / "v"),
        "--vertical",
        "--feature-groups",
        "vitals,static;labs,meds,urine",
        "--label-party",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert "vertical federation" in result.stdout
    manifest = json.loads((tmp_path / "v" / "hospital_1" / "manifest.json").read_text())
    assert manifest["label_party"] is True and len(manifest["features"]) == 4


BAD_INPUTS = [
    (["--hospitals", "0"], "--hospitals 0: must be at least 1"),
    (["--hospitals", "13"], "--hospitals 13: more hospitals than the cohort's 12 patients"),
    (["--hospitals", "2", "--split", "0.5,0.5,0.5"], "fractions sum to 1.5, not 1"),
    (["--hospitals", "2", "--split", "1.2,-0.1,-0.1"], "must be non-negative"),
    (["--hospitals", "2", "--split", "0.5,0.5"], "expected three fractions"),
    (["--hospitals", "2", "--split", "a,b,c"], "expected three numbers"),
    (["--hospitals", "2", "--alpha", "0"], "--alpha 0: must be a positive number"),
    (["--hospitals", "2", "--alpha", "-1"], "--alpha -1: must be a positive number"),
    (["--hospitals", "2", "--scheme", "bogus"], "--scheme bogus: unknown scheme"),
    (["--hospitals", "2", "--iid", "--scheme", "careunit"], "conflicts with --iid"),
    (["--hospitals", "4", "--scheme", "careunit"], "scheme careunit needs at most"),
    (["--hospitals", "2", "--label-party", "1"], "only apply with --vertical"),
    (["--vertical", "--feature-groups", "vitals;bogus"], "unknown group(s) bogus"),
    (["--vertical", "--hospitals", "2"], "--vertical needs one hospital per party"),
    (["--vertical", "--scheme", "quantity"], "do not apply to --vertical"),
    (["--vertical", "--label-party", "5"], "--label-party 5: only parties 0..2 exist"),
    ([], "--hospitals: required"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_options(cohort, tmp_path, args, message):
    out = tmp_path / "fed"
    result = invoke("--cohort", str(cohort.path), "--out", str(out), *args)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_cohort_directories(cohort, tmp_path):
    result = invoke(
        "--cohort", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--hospitals", "2"
    )
    assert result.exit_code == 1 and "directory not found" in result.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in cohort.path.iterdir():
        if f.name != "timeseries.parquet":
            (broken / f.name).write_bytes(f.read_bytes())
    result = invoke("--cohort", str(broken), "--out", str(tmp_path / "o"), "--hospitals", "2")
    assert result.exit_code == 1 and "missing timeseries.parquet" in result.stderr
    (broken / "timeseries.parquet").write_bytes((cohort.path / "timeseries.parquet").read_bytes())
    (broken / "manifest.json").write_text('{"features": [{"name": "hr"}]}')
    result = invoke("--cohort", str(broken), "--out", str(tmp_path / "o"), "--hospitals", "2")
    assert result.exit_code == 1 and "malformed manifest" in result.stderr
    assert not (tmp_path / "o").exists()


def test_non_empty_out_needs_overwrite(cohort, tmp_path):
    out = tmp_path / "fed"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    args = ["--cohort", str(cohort.path), "--out", str(out), "--hospitals", "2"]
    result = invoke(*args)
    assert result.exit_code == 1 and "not empty (use --overwrite)" in result.stderr
    assert (out / "keep.txt").read_text() == "user data"
    result = invoke(*args, "--overwrite")  # a folder crypten-fl did not write: never replaced
    assert result.exit_code == 1 and "not a directory written by crypten-fl" in result.stderr
    assert (out / "keep.txt").read_text() == "user data"
    (out / "keep.txt").unlink()
    assert invoke(*args).exit_code == 0  # an empty folder may be written
    (out / "partition.json").write_text("{}")
    result = invoke(*args, "--overwrite")  # an earlier federation: replaced
    assert result.exit_code == 0, result.output
    assert json.loads((out / "partition.json").read_text())["hospitals"] == 2
