"""The same data as .csv / .csv.gz and in the v1.0, v2.2 and v3.1 layouts gives identical output."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from crypten_fl.mimic_etl.extract import extract
from crypten_fl.mimic_etl.extract.tables import locate
from helpers.mimic_fixture import EXPECTED_FLOW, write_mimic

OUTPUTS = ("static.parquet", "timeseries.parquet", "labels.parquet")


def _extract(root: Path, release: str, compressed: bool) -> Path:
    write_mimic(root / "mimic", release=release, compressed=compressed)
    extract(root / "mimic", root / "cohort")
    return root / "cohort"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _extract(tmp_path_factory.mktemp("ref"), "v3.1", compressed=True)


def assert_same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert pl.read_parquet(a / name).equals(pl.read_parquet(b / name)), name
    assert (a / "cohort_flow.json").read_text() == (b / "cohort_flow.json").read_text()


@pytest.mark.parametrize(
    ("release", "compressed"),
    [("v3.1", False), ("v2.2", True), ("v2.2", False), ("v1.0", True)],
)
def test_layouts_give_identical_outputs(
    reference: Path, tmp_path: Path, release: str, compressed: bool
) -> None:
    assert_same_outputs(reference, _extract(tmp_path, release, compressed))


def test_v1_layout_is_read_from_core_with_ethnicity(tmp_path: Path) -> None:
    root = write_mimic(tmp_path / "mimic", release="v1.0")
    tables = locate(root)
    assert tables["admissions"].path == root / "core" / "admissions.csv.gz"
    assert "ethnicity" in tables["admissions"].header
    assert "caregiver_id" not in tables["chartevents"].header
    assert '"ethnicity" AS race' in tables["admissions"].view_sql()


def test_mixed_compression_and_gz_preferred(tmp_path: Path, reference: Path) -> None:
    """Some tables .csv, others .csv.gz; where both exist the .csv.gz (the download) is read."""
    root = write_mimic(tmp_path / "mimic", compressed=True)
    write_mimic(tmp_path / "plain", compressed=False)
    (root / "icu" / "chartevents.csv.gz").unlink()
    (tmp_path / "plain" / "icu" / "chartevents.csv").rename(root / "icu" / "chartevents.csv")
    (root / "hosp" / "labevents.csv").write_text("not, the, table\n")  # shadowed by .csv.gz
    tables = locate(root)
    assert tables["chartevents"].path.name == "chartevents.csv"
    assert tables["labevents"].path.name == "labevents.csv.gz"
    extract(root, tmp_path / "cohort")
    assert_same_outputs(reference, tmp_path / "cohort")


def test_min_los_and_window_options(tmp_path: Path) -> None:
    write_mimic(tmp_path / "mimic")
    summary = extract(
        tmp_path / "mimic", tmp_path / "cohort", hours=24, bin_hours=6, min_los_hours=24
    )
    flow = [(s.step, s.remaining, s.removed) for s in summary.cohort_flow]
    expected = [*EXPECTED_FLOW[:5], ("min_los", 6, 1), ("has_observation", 5, 1)]
    assert flow == expected
    ts = pl.read_parquet(tmp_path / "cohort" / "timeseries.parquet")
    assert ts.height == 5 * 4 and summary.n_bins == 4
    first = ts.filter(pl.col("stay_id") == 1001).row(0, named=True)
    # bin 0 is now [0, 6) h: heart rate 80, 90, 100, 70 (dup 90 once; 350 is an outlier)
    assert first["heart_rate"] == pytest.approx(85.0)
    assert first["urine_output"] == pytest.approx(200.0)  # 150 + 50 + 0
    assert first["vasopressor"] == 1.0 and first["diuretic"] == 0.0
    second = ts.filter(pl.col("stay_id") == 1001).row(1, named=True)
    assert second["diuretic"] == 1.0 and second["sedative"] == 1.0  # orders at 6 h and 8-10 h
    manifest = json.loads((tmp_path / "cohort" / "manifest.json").read_text())
    assert manifest["counts"]["timeseries_rows"] == 20
