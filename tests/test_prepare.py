"""`crypten-fl prepare`: a real site's own hospital directory, and the schema check before the
first round when sites that prepared their data separately train together."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import MARKER
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.identity import provision
from crypten_fl.fedtrain.launch import PartyFailure, free_port, launch
from crypten_fl.fedtrain.run.coordinator import JOB, train
from crypten_fl.mimic_etl.partition import partition, prepare
from crypten_fl.mimic_etl.partition.prepare import hospital_index
from crypten_fl.mimic_etl.schema import fingerprint, manifest_schema
from helpers.cohort_fixture import DEFAULT_FEATURES, random_cohort
from helpers.federation import TINY_MODEL
from helpers.nodes import node_argv
from typer.testing import CliRunner

runner = CliRunner()
ALBUMIN = ("albumin", "g/dL", "labs", "labevents")
#: sites 0 and 1 extract albumin, site 2 does not
SITE_FEATURES = [(*DEFAULT_FEATURES[:4], ALBUMIN, *DEFAULT_FEATURES[4:])] * 2 + [DEFAULT_FEATURES]
MISMATCH = ("the hospitals' data schemas differ (compared before the first round): "
            "hospital_2: feature list differs: albumin missing")


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> Path:
    """Three sites, each with its own cohort (other patients) prepared with `crypten-fl
    prepare` into sites/hospital_<k>; site 2 extracted no albumin."""
    root = tmp_path_factory.mktemp("sites")
    (root / "sites").mkdir()
    for k, features in enumerate(SITE_FEATURES):
        random_cohort(root / f"cohort{k}", n_patients=60, seed=20 + k, features=features)
        result = runner.invoke(app, ["prepare", "--cohort", str(root / f"cohort{k}"), "--out",
                                     str(root / "sites" / f"hospital_{k}"), "--seed", str(k)])
        assert result.exit_code == 0, result.output
    return root / "sites"


def federation(sites: Path, root: Path, members: list[int]) -> Path:
    """FED/ assembled from prepared sites (links to their directories, nothing else)."""
    fed = root / "fed"
    fed.mkdir()
    for new, k in enumerate(members):
        (fed / f"hospital_{new}").symlink_to(sites / f"hospital_{k}", target_is_directory=True)
    return fed


def test_prepare_writes_what_partition_writes_for_one_hospital(tmp_path) -> None:
    random_cohort(tmp_path / "cohort", n_patients=40, seed=1)
    (tmp_path / "site").mkdir()
    site = prepare(tmp_path / "cohort", tmp_path / "site" / "hospital_2", seed=5)
    partition(tmp_path / "cohort", tmp_path / "fed", hospitals=1, iid=True, seed=5)
    mine, theirs = tmp_path / "site" / "hospital_2", tmp_path / "fed" / "hospital_0"
    assert sorted(p.name for p in mine.iterdir()) == sorted(
        [MARKER, *(p.name for p in theirs.iterdir())]) == sorted(
        [MARKER, "manifest.json", "train.parquet", "val.parquet", "test.parquet"])
    for split in ("train", "val", "test"):
        assert pl.read_parquet(mine / f"{split}.parquet").equals(
            pl.read_parquet(theirs / f"{split}.parquet"))
    ours, reference = (json.loads((d / "manifest.json").read_text()) for d in (mine, theirs))
    assert list(ours) == list(reference)  # the same fields, in the same order
    differ = {k for k in ours if ours[k] != reference[k]}
    assert {"command", "parameters", "hospital"} <= differ <= {"command", "parameters",
                                                               "hospital", "created_utc"}
    assert (ours["command"], ours["hospital"], reference["hospital"]) == ("prepare", 2, 0)
    assert ours["parameters"] == {"cohort": str(tmp_path / "cohort"), "out": str(mine),
                                  "hospital": 2, "split": [0.7, 0.1, 0.2]}
    assert ours["schema_sha256"] == site.schema_sha256 == fingerprint(ours["schema"])
    assert manifest_schema(ours) == ours["schema"]
    # split by patient: every stay once, no patient in two splits
    frames = {s: pl.read_parquet(mine / f"{s}.parquet") for s in ("train", "val", "test")}
    patients = [set(f["subject_id"].to_list()) for f in frames.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or
                patients[1] & patients[2])
    assert sum(f.height for f in frames.values()) == site.hospital.stays == \
        pl.read_parquet(tmp_path / "cohort" / "static.parquet").height
    assert site.hospital.split_stays == {s: f.height for s, f in frames.items()}


def test_the_split_is_not_part_of_the_schema(tmp_path) -> None:
    """--split changes which of a site's own patients train, never what the columns mean: sites
    with different fractions share one fingerprint (nothing at train time reads the fractions)."""
    random_cohort(tmp_path / "cohort", n_patients=40, seed=1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    usual = prepare(tmp_path / "cohort", tmp_path / "a" / "hospital_0", seed=5)
    other = prepare(tmp_path / "cohort", tmp_path / "b" / "hospital_0", split=(0.5, 0.2, 0.3),
                    seed=5)
    assert usual.hospital.split_stays == {"train": 52, "val": 7, "test": 19}
    assert other.hospital.split_stays == {"train": 35, "val": 17, "test": 26}
    assert usual.schema_sha256 == other.schema_sha256


def test_the_hospital_index_comes_from_the_option_or_the_directory_name() -> None:
    assert hospital_index(None, Path("fed/hospital_3")) == 3
    assert hospital_index(None, Path("/data/site")) == 0
    assert hospital_index(4, Path("/data/site")) == 4
    assert hospital_index(3, Path("fed/hospital_3")) == 3
    with pytest.raises(UserError, match=r"--hospital 2: --out fed/hospital_3 is named for "
                                        r"hospital 3"):
        hospital_index(2, Path("fed/hospital_3"))
    with pytest.raises(UserError, match="--hospital -1: must be 0 or more"):
        hospital_index(-1, Path("x"))


def test_sites_prepared_separately_train_together(sites, tmp_path) -> None:
    """No partition.json, no pooled cohort: `train --fed` on the sites' own directories."""
    fed = federation(sites, tmp_path, [0, 1])
    summary = train(TrainConfig(fed=str(fed), rounds=1, seed=2, **TINY_MODEL), tmp_path / "run")
    per_hospital = summary.test_metrics["per_hospital"]
    tests = [json.loads((sites / f"hospital_{k}" / "manifest.json").read_text())["counts"]["test"]
             for k in (0, 1)]
    assert [per_hospital[f"hospital_{k}"]["n"] for k in (0, 1)] == tests
    assert summary.rounds_completed == 1
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [m["round"] for m in metrics] == [1] and set(metrics[0]["hospitals"]) == {"0", "1"}


def test_a_mismatched_site_is_named_before_any_process_starts(sites, tmp_path) -> None:
    fed = federation(sites, tmp_path, [0, 1, 2])
    with pytest.raises(UserError) as err:
        train(TrainConfig(fed=str(fed), rounds=1, **TINY_MODEL), tmp_path / "run")
    assert str(err.value) == f"--fed {fed}: {MISMATCH}"
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_parties_compare_schemas_before_the_first_round(sites, tmp_path) -> None:
    """The hospital processes of a local run exchange their schemas themselves (the
    coordinator's check is only a shortcut): the job stops before any round."""
    config = TrainConfig(fed="", rounds=1, **TINY_MODEL)
    (tmp_path / "run").mkdir()
    specs = [{"config": config.to_json(), "run_dir": str(tmp_path / "run"), "resume_round": 0,
              "n_hospitals": 3, "min_members": None,
              "hospital_dirs": [str(sites / f"hospital_{k}")], "hospital": k} for k in range(3)]
    with pytest.raises(PartyFailure) as err:
        launch(JOB, specs, tmp_path / "parties", timeout_s=30,
               party_name=lambda r: f"hospital {r}")
    assert MISMATCH in str(err.value)
    assert not list((tmp_path / "run").iterdir())  # no checkpoint: no round began


def test_every_node_of_a_mismatched_federation_stops_with_the_same_line(sites, tmp_path) -> None:
    """Three separately started nodes over the federation's authenticated channels."""
    provision(tmp_path / "kits", 3, ttp=False, rendezvous=None)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TrainConfig(fed="", rounds=1, **TINY_MODEL).to_json()))
    rendezvous = f"tcp://127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(node_argv(k, rendezvous, sites / f"hospital_{k}", config,
                                        tmp_path / f"node{k}", kits=tmp_path / "kits"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k in range(3)]
    outputs = [n.communicate(timeout=240)[0] for n in nodes]
    for k, (node, output) in enumerate(zip(nodes, outputs, strict=True)):
        assert node.returncode == 1, output
        assert "Traceback" not in output, output
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert errors == [f"error: hospital {k} stopped: {MISMATCH} (outputs in "
                          f"{tmp_path / f'node{k}'})"], output
        assert not (tmp_path / f"node{k}" / "checkpoints").exists()
