"""MEDS input of `extract` against the CSV path: one synthetic release written both ways
(`synth --format csv|meds`) must give the same cohort.

Same stay ids, identical labels and masks, feature values equal within float32 tolerance (MEDS
stores numeric_value as float32); static columns equal except anchor_year_group, which MEDS does
not carry. Without stay/admission id columns in the shards the stays are recovered from event
times: then the same stays (by subject and ICU admission time) and the same values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from crypten_fl.mimic_etl.extract import extract
from crypten_fl.mimic_etl.extract.definitions import mapping_hash
from crypten_fl.mimic_etl.extract.meds import DEFAULT_MAPPING
from crypten_fl.mimic_etl.schema import cohort_extras, describe, differences
from crypten_fl.mimic_etl.synth import generate

PATIENTS, SEED = 60, 3
MANIFEST_FIELDS = {"features": [], "labels": [], "n_bins": 24, "bin_hours": 2}


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("meds-equivalence")
    generate(root / "mimic", PATIENTS, seed=SEED)
    generate(root / "meds", PATIENTS, seed=SEED, format="meds")
    extract(root / "mimic", root / "csv_cohort", threads=1)
    extract(None, root / "meds_cohort", threads=1, meds_dir=root / "meds")
    return {"root": root, "meds": root / "meds", "csv": root / "csv_cohort",
            "from_meds": root / "meds_cohort"}


def frames(cohort: Path) -> dict[str, pl.DataFrame]:
    return {n: pl.read_parquet(cohort / f"{n}.parquet") for n in ("static", "labels",
                                                                    "timeseries")}


def assert_same_values(want: pl.DataFrame, got: pl.DataFrame) -> None:
    """Same columns; integer/text columns identical; float columns allclose (NULL = NULL)."""
    assert want.columns == got.columns and want.height == got.height
    for column in want.columns:
        if want[column].dtype in (pl.Float32, pl.Float64):
            a, b = (f[column].cast(pl.Float64).to_numpy() for f in (want, got))
            assert np.allclose(a, b, rtol=1e-5, atol=1e-4, equal_nan=True), column
        else:
            assert want[column].equals(got[column]), column


def test_csv_and_meds_give_the_same_cohort(releases: dict[str, Path]) -> None:
    want, got = frames(releases["csv"]), frames(releases["from_meds"])
    assert got["static"]["stay_id"].to_list() == want["static"]["stay_id"].to_list()
    assert want["static"].height > 20
    assert got["labels"].equals(want["labels"])
    assert_same_values(want["timeseries"], got["timeseries"])
    assert got["static"]["anchor_year_group"].null_count() == got["static"].height
    assert_same_values(want["static"].drop("anchor_year_group"),
                       got["static"].drop("anchor_year_group"))
    flows = [json.loads((releases[k] / "cohort_flow.json").read_text()) for k in ("csv",
                                                                                   "from_meds")]
    assert flows[0] == flows[1]
    manifest = json.loads((releases["from_meds"] / "manifest.json").read_text())
    assert manifest["source"]["format"] == "meds"
    assert manifest["source"]["unmapped_codes"] == 0
    assert manifest["source"]["subjects_without_icu_stay"] > 0
    assert manifest["parameters"]["meds_dir"] == str(releases["meds"])
    # the default mapping reads the MIMIC-IV codes: one schema with the CSV path
    csv_manifest = json.loads((releases["csv"] / "manifest.json").read_text())
    assert manifest["definitions"] == csv_manifest["definitions"]
    assert "meds_mapping" not in manifest["definitions"]


def test_stays_are_recovered_from_event_times_without_ids(releases: dict[str, Path],
                                                          tmp_path: Path) -> None:
    meds = Path(shutil.copytree(releases["meds"], tmp_path / "meds"))
    for shard in (meds / "data").rglob("*.parquet"):
        pl.read_parquet(shard).drop("hadm_id", "stay_id").write_parquet(shard)
    extract(None, tmp_path / "cohort", threads=1, meds_dir=meds)
    want, got = frames(releases["csv"]), frames(tmp_path / "cohort")
    keys = ["subject_id", "intime"]
    pairs = want["static"].select("stay_id", *keys).join(
        got["static"].select(pl.col("stay_id").alias("recovered"), *keys), on=keys, how="full")
    assert pairs["stay_id"].null_count() == 0 and pairs["recovered"].null_count() == 0
    to_csv = dict(zip(pairs["recovered"].to_list(), pairs["stay_id"].to_list(), strict=True))
    renamed = {n: f.with_columns(pl.col("stay_id").replace_strict(to_csv, return_dtype=pl.Int64))
               .sort(["stay_id", "bin"] if n == "timeseries" else "stay_id")
               for n, f in got.items()}
    assert renamed["labels"].equals(want["labels"])
    assert_same_values(want["timeseries"], renamed["timeseries"])
    assert_same_values(want["static"].drop("anchor_year_group", "hadm_id"),
                       renamed["static"].drop("anchor_year_group", "hadm_id"))


def test_a_user_mapping_reads_other_codes(releases: dict[str, Path], tmp_path: Path) -> None:
    """Another source's codes: ICU_IN//<unit> instead of ICU_ADMISSION//<unit>."""
    meds = Path(shutil.copytree(releases["meds"], tmp_path / "meds"))
    for shard in (meds / "data").rglob("*.parquet"):
        frame = pl.read_parquet(shard)
        frame.with_columns(pl.col("code").str.replace("^ICU_ADMISSION//", "ICU_IN//")) \
            .write_parquet(shard)
    mapping = Path(shutil.copytree(DEFAULT_MAPPING, tmp_path / "mapping"))
    codes = mapping / "codes.csv"
    codes.write_text(codes.read_text().replace(",^ICU_ADMISSION//,", ",^ICU_IN//,"))
    extract(None, tmp_path / "cohort", threads=1, meds_dir=meds, meds_mapping=mapping)
    assert frames(tmp_path / "cohort")["labels"].equals(frames(releases["csv"])["labels"])
    # same columns, but another mapping: its hash is in the schema, so the check names it
    definitions = json.loads((tmp_path / "cohort" / "manifest.json").read_text())["definitions"]
    assert definitions["meds_mapping"] == mapping_hash(mapping)
    cohorts = {"hospital_0": releases["csv"], "hospital_1": tmp_path / "cohort"}
    described = {name: describe(MANIFEST_FIELDS, cohort_extras(
        json.loads((cohort / "manifest.json").read_text()))) for name, cohort in cohorts.items()}
    assert differences(described["hospital_0"], described["hospital_1"], "hospital_0") == [
        f"MEDS mapping custom {mapping_hash(mapping)}, hospital_0 uses the MIMIC-IV codes (CSV "
        "or the default mapping)"]


def test_synth_meds_reports_progress_and_leaves_no_scratch(tmp_path: Path) -> None:
    """The MEDS writer works out of core in a scratch database next to the output; it is gone
    afterwards, and each step is reported."""
    calls: list[tuple[str, int, int]] = []
    generate(tmp_path / "meds", 8, seed=1, format="meds",
             progress=lambda task, done, total: calls.append((task, done, total)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meds"]
    steps = [(done, total) for task, done, total in calls if task == "MEDS events"]
    assert steps[0] == (0, 4) and steps[-1] == (4, 4)
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    assert sorted(str(p.relative_to(tmp_path / "meds")) for p in
                  (tmp_path / "meds").rglob("*.parquet")) == [
        "data/held_out/0.parquet", "data/train/0.parquet", "metadata/codes.parquet"]


def test_synth_meds_writes_under_a_folder_with_a_quote_in_its_name(tmp_path: Path) -> None:
    """Every path goes into the writer's SQL as a quoted literal (sql.literal)."""
    out = tmp_path / "o'brien's data" / "meds"
    out.parent.mkdir()
    generate(out, 8, seed=1, format="meds")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == [
        "data/held_out/0.parquet", "data/train/0.parquet", "metadata/codes.parquet"]
