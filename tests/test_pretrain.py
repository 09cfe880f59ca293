"""`crypten-fl pretrain` and `train --init-from`: the card, the start from exactly the pretrained
weights at every hospital, the one-line refusals, and ε unchanged by public pretraining."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import torch
from crypten_fl.cli.app import app
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.models.pretrained import (
    Pretrained,
    load_weights,
    mismatches,
    read_pretrained,
    state_digest,
)
from crypten_fl.fedtrain.pretraining import pretrain
from crypten_fl.fedtrain.run.coordinator import partial_dir, train
from crypten_fl.fedtrain.run.init_from import resolve_init_from
from crypten_fl.fedtrain.sessions.hospital import initial_model
from crypten_fl.mimic_etl.partition.pipeline import partition
from helpers.cohort_fixture import DEFAULT_FEATURES, LABEL_NAMES, random_cohort
from helpers.federation import TINY_MODEL, small_federation
from helpers.synth import release
from opacus.accountants import PRVAccountant
from safetensors.torch import load_file
from typer.testing import CliRunner

runner = CliRunner()
ARCH = {k: v for k, v in TINY_MODEL.items() if k != "timeout"}
FEATURES = [f[0] for f in DEFAULT_FEATURES]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return small_federation(tmp_path_factory.mktemp("fed"), n_patients=240, seed=4, hospitals=3)


@pytest.fixture(scope="module")
def public(tmp_path_factory) -> Path:
    """Another random cohort with the same features: none of the federation's patients."""
    return random_cohort(tmp_path_factory.mktemp("public") / "cohort", n_patients=160,
                         seed=9).path


@pytest.fixture(scope="module")
def model(public, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "model"
    pretrain(TrainConfig(fed="", seed=3, **ARCH), out, epochs=2, cohort=public,
             public_data=True)
    return out


def _config(fed: Path, **kw: object) -> TrainConfig:
    return TrainConfig(fed=str(fed), **{"rounds": 1, **TINY_MODEL, **kw})


def test_card_records_architecture_data_training_and_validation(model, public) -> None:
    card = json.loads((model / "card.json").read_text())
    assert list(card) == ["format", "format_version", "created_by", "weights", "architecture",
                          "features", "labels", "static", "time_bins", "schema",
                          "schema_sha256", "data", "training", "validation",
                          "public_features"]
    assert card["format"] == "crypten-fl pretrained ICU Transformer"
    assert card["format_version"] == 1
    assert card["weights"]["file"] == "model.safetensors"
    assert card["weights"]["sha256"] == _sha(model / "model.safetensors")
    weights = load_file(str(model / "model.safetensors"))
    assert card["weights"]["parameters"] == sum(t.numel() for t in weights.values())
    assert card["architecture"] == {"d_model": 16, "n_heads": 2, "n_layers": 1,
                                    "dim_feedforward": 32, "pooling": "cls", "head_hidden": 16,
                                    "stay_summary": True, "dropout": 0.1, "n_features": 6,
                                    "n_static": 43, "n_labels": 12, "n_bins": 4}
    assert card["features"] == FEATURES
    assert card["labels"] == list(LABEL_NAMES)
    assert card["time_bins"] == {"n_bins": 4, "bin_hours": 2.0,
                                 "hours": card["schema"]["hours"]}
    data = card["data"]
    assert {k: data[k] for k in ("option", "path", "public", "public_because", "synthetic",
                                 "release", "split", "split_seed")} == {
        "option": "--cohort", "path": str(public.resolve()), "public": True,
        "public_because": "declared public by the user (--public-data)", "synthetic": False,
        "release": None, "split": [0.85, 0.15, 0.0], "split_seed": 3}
    assert data["cohort_sha256"] == {name: _sha(public / name) for name in (
        "static.parquet", "timeseries.parquet", "labels.parquet", "manifest.json")}
    training = card["training"]
    assert (training["epochs"], training["seed"], training["lr"], training["batch_size"],
            training["dp"]) == (2, 3, 0.002, 64, None)
    assert [h["epoch"] for h in training["history"]] == [1, 2]
    validation = card["validation"]
    assert validation["n"] == data["stays"]["val"] > 0
    assert validation["macro"]["auroc"] == training["history"][-1]["val_macro_auroc"]
    assert list(validation["per_label"]) == list(LABEL_NAMES)
    assert not (model / "scratch").exists()
    assert sorted(p.name for p in model.iterdir()) == [".crypten-fl-output", "card.json",
                                                        "model.safetensors",
                                                        "public_features.safetensors"]


def test_pretraining_is_reproducible_from_its_seed(model, public, tmp_path) -> None:
    pretrain(TrainConfig(fed="", seed=3, **ARCH), tmp_path / "again", epochs=2, cohort=public,
             public_data=True)
    assert _sha(tmp_path / "again" / "model.safetensors") == _sha(model / "model.safetensors")


def test_a_synth_release_is_public_by_construction(tmp_path_factory, tmp_path) -> None:
    mimic = release(tmp_path_factory, patients=60, seed=2)
    pretrain(TrainConfig(fed="", **ARCH), tmp_path / "m", epochs=1, mimic_dir=mimic)
    data = json.loads((tmp_path / "m" / "card.json").read_text())["data"]
    assert data["option"] == "--mimic-dir" and data["synthetic"] is True
    assert data["public_because"].startswith("synthetic release of `crypten-fl synth` (seed 2,")
    assert data["release"] == {"file": "synth_summary.json",
                               "sha256": _sha(mimic / "synth_summary.json")}


def test_data_not_known_to_be_public_is_refused_in_one_line(public, tmp_path) -> None:
    result = runner.invoke(app, ["pretrain", "--cohort", str(public), "--out",
                                 str(tmp_path / "m"), "--epochs", "1"])
    assert result.exit_code == 1
    assert result.output.lstrip("\n") == (  # a blank line where progress bars would start
        f"error: --cohort {public}: is an extracted cohort, whose source pretrain cannot "
        "check; pretraining is free of privacy cost only on public data, so declare it with "
        "--public-data if it is public (it must hold none of the federation's patients)\n")
    assert not (tmp_path / "m").exists()


def test_the_initial_model_is_exactly_the_file(model) -> None:
    config = TrainConfig(fed="", seed=99, **ARCH)  # another seed: the file decides, not it
    start = initial_model(config, 6, 43, 12, 4, str(model)).state_dict()
    weights = load_file(str(model / "model.safetensors"))
    assert start.keys() == weights.keys()
    assert all(torch.equal(start[k], weights[k]) for k in weights)


@pytest.mark.parametrize("strategy", [
    pytest.param(name, marks=() if name == "fedper" else pytest.mark.slow)  # one in make test
    for name in ("local", "centralized", "fedper", "fedmtl", "split")])
def test_every_hospital_starts_from_exactly_the_pretrained_weights(fed, model, tmp_path,
                                                                   strategy) -> None:
    # a generous peer timeout: the TTP of split is slow to start on a loaded machine
    summary = train(_config(fed, strategy=strategy, init_from=str(model), timeout=120),
                    tmp_path / "run")
    digest = state_digest(load_file(str(model / "model.safetensors")))
    started = summary.privacy["pretraining"]["initial_model_sha256"]
    parties = ["pooled"] if strategy == "centralized" else ["0", "1", "2"]
    assert started == {p: digest for p in parties}
    config = json.loads((summary.run_dir / "config.json").read_text())
    assert config["init_from"] == str(model.resolve())
    assert config["init_from_sha256"] == _sha(model / "model.safetensors")


def _epsilon(report: dict) -> float:
    accountant = PRVAccountant()
    accountant.history = [(report["noise_multiplier"], report["sample_rate"], report["steps"])]
    return accountant.get_epsilon(report["delta"])


@pytest.fixture(scope="module")
def dp_random(fed, tmp_path_factory) -> dict:
    """privacy.json of a DP-SGD run from the seeded random initialisation."""
    summary = train(_config(fed, dp_epsilon=2.0, timeout=120),
                    tmp_path_factory.mktemp("dp") / "random")
    return json.loads((summary.run_dir / "privacy.json").read_text())


@pytest.mark.slow  # tests/test_dp_accounting.py checks random-init runs in make test
def test_dp_fine_tuning_from_random_init_is_accounted(dp_random) -> None:
    assert dp_random["pretraining"] is None
    for report in dp_random["hospitals"].values():
        assert report["epsilon"] == _epsilon(report) and report["steps"] > 0


def test_dp_fine_tuning_is_accounted_and_pretraining_costs_no_epsilon(fed, model, dp_random,
                                                                      tmp_path) -> None:
    summary = train(_config(fed, dp_epsilon=2.0, init_from=str(model), timeout=120),
                    tmp_path / "pretrained")
    with_init = json.loads((summary.run_dir / "privacy.json").read_text())
    for h, report in with_init["hospitals"].items():
        assert report["epsilon"] == _epsilon(report) == dp_random["hospitals"][h]["epsilon"]
        assert report["steps"] == dp_random["hospitals"][h]["steps"]
    pretraining = with_init["pretraining"]
    assert (pretraining["epsilon"], pretraining["public_data"]) == (0.0, True)
    assert pretraining["weights_sha256"] == _sha(model / "model.safetensors")
    assert pretraining["data"] == read_pretrained(model).card["data"]
    digest = state_digest(load_file(str(model / "model.safetensors")))
    assert pretraining["initial_model_sha256"] == {h: digest for h in ("0", "1", "2")}


def test_a_model_of_another_architecture_is_refused_naming_the_option(fed, model,
                                                                      tmp_path) -> None:
    out = tmp_path / "r"
    result = runner.invoke(app, ["train", "--fed", str(fed), "--out", str(out), "--d-model",
                                 "32", "--heads", "2", "--layers", "1", "--init-from",
                                 str(model)])
    assert result.exit_code == 1  # after the (empty) live table: one error line
    assert result.output[result.output.index("error:"):] == (
        f"error: --init-from {model.resolve()}: the pretrained model does not fit this run: "
        "--d-model 32, the pretrained model has 16; dim_feedforward 128, the pretrained model "
        "has 32; --head-hidden 0, the pretrained model has 16\n")
    assert not out.exists() and not partial_dir(out).exists()


def test_a_federation_with_other_features_is_refused_naming_them(model, tmp_path) -> None:
    features = [f for f in DEFAULT_FEATURES if f[0] != "lactate"]
    random_cohort(tmp_path / "cohort", n_patients=60, seed=1, features=features)
    partition(tmp_path / "cohort", tmp_path / "fed", hospitals=3, seed=0)
    with pytest.raises(UserError) as err:
        train(_config(tmp_path / "fed", init_from=str(model)), tmp_path / "r")
    assert str(err.value) == (
        f"--init-from {model.resolve()}: the pretrained model does not fit this run: "
        "feature list differs: lactate missing")


def test_every_hospital_checks_its_copy_against_the_run_s_hash(model, tmp_path) -> None:
    schema = read_pretrained(model).card["schema"]
    other = "0" * 64
    config = TrainConfig(fed="", init_from=str(model), init_from_sha256=other, **ARCH)
    with pytest.raises(UserError, match=r"the run's config expects 000000000000… \(every "
                                        r"hospital must start from the same model\)"):
        resolve_init_from(config, [schema], model)
    with pytest.raises(UserError, match="every hospital must start from the same model"):
        load_weights(model, other)


def test_definitions_are_compared_where_both_sides_record_them(model) -> None:
    card = copy.deepcopy(read_pretrained(model).card)
    for i, feature in enumerate(card["schema"]["features"]):
        feature["definition"] = f"hash{i}"
    pretrained, config = Pretrained(model, card), TrainConfig(fed="", **ARCH)
    older = copy.deepcopy(read_pretrained(model).card["schema"])  # a cohort without definitions
    assert mismatches(pretrained, config, older) == []
    other = copy.deepcopy(card["schema"])
    other["features"][2]["definition"] = "another"
    assert mismatches(pretrained, config, other) == [
        "feature creatinine: definition (itemids, valid range or unit conversion) differs from "
        "the pretrained model's"]
