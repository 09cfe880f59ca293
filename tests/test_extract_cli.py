"""`crypten-fl extract` through the CLI: tables and JSON, and one clear error line per bad input.

Every failure must exit non-zero, print a single ``error:`` line naming the file or option, leave
no output directory (nor a temporary sibling) behind, and leave the inputs byte-for-byte intact.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.outdir import write_marker
from helpers.mimic_fixture import columns, write_mimic, write_table
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mimic(tmp_path_factory.mktemp("pristine") / "mimic")


@pytest.fixture
def mimic(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the fixture that a test may damage."""
    return Path(shutil.copytree(pristine, tmp_path / "mimic"))


def invoke(*args: str):
    return runner.invoke(app, ["extract", *args])


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_success_prints_flow_summary_and_json(mimic: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = invoke("--mimic-dir", str(mimic), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "has_observation" in result.stdout and "ICU stays" in result.stdout
    assert "label prevalence" in result.stdout and "heart_failure" in result.stdout
    assert f"machine-readable: {out / 'cohort_flow.json'}" in result.stdout
    assert f"machine-readable: {out / 'manifest.json'}" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["stays"] == 6
    assert manifest["summary"]["features_by_group"] == {
        "vitals": 13, "labs": 21, "urine": 1, "meds": 8,
    }


def test_options_reach_the_output(mimic: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = invoke(
        "--mimic-dir", str(mimic), "--out", str(out), "--hours", "24", "--bin-hours", "4",
        "--min-los-hours", "24", "--threads", "1", "--memory-limit", "1GB",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["hours"], manifest["bin_hours"], manifest["n_bins"]) == (24, 4, 6)
    assert manifest["parameters"]["min_los_hours"] == 24.0
    flow = {s["step"]: s for s in json.loads((out / "cohort_flow.json").read_text())}
    assert flow["min_los"]["removed"] == 1  # stay 2001 lasted 5 h
    assert flow["has_observation"]["remaining"] == 5


def test_overwrite_replaces_existing_output(mimic: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "old.txt").write_text("old")
    write_marker(out, "extract", ["old.txt"])
    result = invoke("--mimic-dir", str(mimic), "--out", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "old.txt").exists() and (out / "manifest.json").exists()


def test_overwrite_never_replaces_a_users_folder(mimic: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "old.txt").write_text("old")
    result = invoke("--mimic-dir", str(mimic), "--out", str(out), "--overwrite")
    assert result.exit_code == 1
    assert "not a directory written by crypten-fl" in result.output
    assert (out / "old.txt").read_text() == "old"


def _remove(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def _garbage(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_bytes(b"this is not gzip data\n")


def _truncate(root: Path) -> None:
    """A chartevents.csv.gz whose header and first blocks are fine but whose end is cut off."""
    rng = random.Random(0)
    header = columns("v3.1", "chartevents")
    rows = [
        {"subject_id": 1, "hadm_id": 101, "stay_id": 1001, "charttime": "2150-03-01 11:00:00",
         "itemid": 227969, "value": f"{rng.getrandbits(120):030x}"}
        for _ in range(20_000)
    ]
    path = root / "icu" / "chartevents.csv.gz"
    write_table(path, header, rows)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])


def _drop_column(rel: str, column: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / rel
        text = gzip.decompress(path.read_bytes()).decode()
        header, _, body = text.partition("\n")
        names = header.split(",")
        names[names.index(column)] = f"{column}_renamed"
        path.write_bytes(gzip.compress((",".join(names) + "\n" + body).encode()))

    return damage


def _bad_key(root: Path) -> None:
    path = root / "icu" / "chartevents.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode().replace(",1001,", ",10o1,", 1)
    path.write_bytes(gzip.compress(text.encode()))


def _empty(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_bytes(gzip.compress(b""))


BAD_FILES = [
    ("missing table", _remove("icu/chartevents.csv.gz"), "icu/chartevents.csv.gz",
     "required table not found"),
    ("not gzip", _garbage("hosp/labevents.csv.gz"), "hosp/labevents.csv.gz", "gzip"),
    ("truncated gzip", _truncate, "icu/chartevents.csv.gz", "could not be read"),
    ("missing column", _drop_column("icu/chartevents.csv.gz", "valuenum"),
     "icu/chartevents.csv.gz", "missing required column(s): valuenum"),
    ("missing race", _drop_column("hosp/admissions.csv.gz", "race"),
     "hosp/admissions.csv.gz", "race or ethnicity"),
    ("bad key", _bad_key, "icu/chartevents.csv.gz", "10o1"),
    ("empty file", _empty("icu/icustays.csv.gz"), "icu/icustays.csv.gz", "empty file"),
]


def assert_clean_failure(result, out: Path, mimic: Path, before: dict[str, str], *needles: str):
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert digest(mimic) == before


@pytest.mark.parametrize(
    ("case", "damage", "rel", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_input_file(
    mimic: Path, tmp_path: Path, case: str, damage: Callable[[Path], None], rel: str, message: str
) -> None:
    damage(mimic)
    before = digest(mimic)
    out = tmp_path / "cohort"
    result = invoke("--mimic-dir", str(mimic), "--out", str(out))
    assert_clean_failure(result, out, mimic, before, str(mimic / rel), message)


BAD_OPTIONS = [
    ("bin-hours", ["--bin-hours", "5"], "--bin-hours 5", "divide --hours 48"),
    ("hours", ["--hours", "0"], "--hours 0", "positive"),
    ("memory", ["--memory-limit", "lots"], "--memory-limit 'lots'", "8GB"),
    ("threads", ["--threads", "0"], "--threads 0", ">= 1"),
    ("min-los", ["--min-los-hours", "-1"], "--min-los-hours -1", ">= 0"),
    ("empty cohort", ["--min-age", "200"], "--min-age 200", "no ICU stay left"),
    ("empty after los", ["--min-los-hours", "1000"], "--min-los-hours 1000.0", "no ICU stay"),
]


@pytest.mark.parametrize(
    ("case", "args", "option", "message"), BAD_OPTIONS, ids=[b[0] for b in BAD_OPTIONS]
)
def test_bad_option(
    mimic: Path, tmp_path: Path, case: str, args: list[str], option: str, message: str
) -> None:
    before = digest(mimic)
    out = tmp_path / "cohort"
    result = invoke("--mimic-dir", str(mimic), "--out", str(out), *args)
    assert_clean_failure(result, out, mimic, before, option, message)


def test_missing_mimic_dir_option(tmp_path: Path) -> None:
    result = invoke("--out", str(tmp_path / "cohort"))
    assert result.exit_code != 0
    assert "--mimic-dir" in result.output
    assert not (tmp_path / "cohort").exists()


def test_mimic_dir_not_found(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = invoke("--mimic-dir", str(tmp_path / "nowhere"), "--out", str(out))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and len(errors) == 1
    assert f"--mimic-dir {tmp_path / 'nowhere'}: directory not found" in errors[0]
    assert not out.exists()


def test_existing_output_needs_overwrite(mimic: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = digest(mimic)
    result = invoke("--mimic-dir", str(mimic), "--out", str(out))
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--out" in errors[0] and "--overwrite" in errors[0]
    assert (out / "keep.txt").read_text() == "mine" and sorted(out.iterdir()) == [out / "keep.txt"]
    assert digest(mimic) == before


def test_out_must_not_be_the_input(mimic: Path) -> None:
    before = digest(mimic)
    result = invoke("--mimic-dir", str(mimic), "--out", str(mimic), "--overwrite")
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"--out {mimic}" in errors[0]
    assert digest(mimic) == before
