"""Same seed and arguments: identical bytes; another seed: other data; chunks join seamlessly."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from crypten_fl.mimic_etl.synth import generate
from crypten_fl.mimic_etl.synth.chunks import CHUNK_ICU_PATIENTS, chunk_sizes
from helpers.synth import read

PATIENTS = CHUNK_ICU_PATIENTS + 30  # two chunks


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("determinism")
    return {name: generate(base / name, PATIENTS, seed=seed).out
            for name, seed in (("a", 5), ("b", 5), ("c", 6))}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv.gz"))}


def test_same_seed_gives_identical_bytes(runs: dict[str, Path]) -> None:
    a, b = _files(runs["a"]), _files(runs["b"])
    assert a.keys() == b.keys() and len(a) == 11
    for name in a:
        assert a[name] == b[name], name


def test_other_seed_gives_other_data(runs: dict[str, Path]) -> None:
    a, c = _files(runs["a"]), _files(runs["c"])
    for name in ("hosp/patients.csv.gz", "hosp/labevents.csv.gz", "icu/chartevents.csv.gz"):
        assert a[name] != c[name], name
    assert a["hosp/d_labitems.csv.gz"] == c["hosp/d_labitems.csv.gz"]  # dictionaries are fixed


def test_chunks_concatenate_into_one_consistent_release(runs: dict[str, Path]) -> None:
    root = runs["a"]
    assert chunk_sizes(PATIENTS) == [CHUNK_ICU_PATIENTS, 30]
    stays = read(root, "icustays")
    assert stays["subject_id"].n_unique() == PATIENTS
    for table, key in (("patients", "subject_id"), ("admissions", "hadm_id"),
                       ("icustays", "stay_id"), ("labevents", "labevent_id"),
                       ("prescriptions", "pharmacy_id")):
        ids = read(root, table)[key].cast(pl.Int64)
        assert ids.is_unique().all(), table
    subjects = read(root, "patients")["subject_id"].cast(pl.Int64)
    assert subjects.is_sorted()
    labevent_ids = read(root, "labevents")["labevent_id"].cast(pl.Int64)
    assert labevent_ids.to_list() == list(range(1, len(labevent_ids) + 1))
