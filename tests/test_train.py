"""`crypten-fl train` end to end with real hospital processes on a small fixture federation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from crypten_fl.cli.app import app
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import partial_dir, train
from crypten_fl.mimic_etl.partition.pipeline import partition
from helpers.federation import TINY_MODEL, small_federation
from safetensors.torch import load_file
from typer.testing import CliRunner

runner = CliRunner()
SMALL = {"rounds": 2, **TINY_MODEL}


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return small_federation(tmp_path_factory.mktemp("fed"), n_patients=240, seed=4, hospitals=3)


def _config(fed: Path, **kw: object) -> TrainConfig:
    return TrainConfig(fed=str(fed), **{**SMALL, **kw})


def _model(run: Path, stem: str = "model") -> dict[str, torch.Tensor]:
    return load_file(str(run / f"{stem}.safetensors"))


@pytest.fixture(scope="module")
def secure_run(fed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "secure"
    train(_config(fed, seed=5), out)
    return out


def test_secure_run_writes_every_output(secure_run: Path) -> None:
    names = {p.name for p in secure_run.iterdir()}
    assert {"config.json", "metrics.jsonl", "test_metrics.json", "comm.json", "privacy.json",
            "model.safetensors", "checkpoints"} <= names
    lines = [json.loads(x) for x in (secure_run / "metrics.jsonl").read_text().splitlines()]
    assert [x["round"] for x in lines] == [1, 2]
    assert set(lines[0]["hospitals"]) == {"0", "1", "2"}
    comm = json.loads((secure_run / "comm.json").read_text())
    assert comm["secure"] is True
    elements = {p["elements"] for p in comm["parties"].values()}
    assert len(elements) == 1  # every hospital exchanged the same number of elements
    # CrypTen counts 2 × 8 bytes per element of an all-reduce
    assert all(p["bytes_communicated"] == 16 * p["elements"] for p in comm["parties"].values())
    metrics = json.loads((secure_run / "test_metrics.json").read_text())
    assert set(metrics["per_hospital"]) == {"hospital_0", "hospital_1", "hospital_2"}
    n_test = sum(h["n"] for h in metrics["per_hospital"].values())
    assert metrics["overall"]["labels"]["sepsis"]["n"] == n_test
    assert not partial_dir(secure_run).exists()


def test_secure_and_plain_aggregation_give_the_same_model(fed, secure_run, tmp_path) -> None:
    train(_config(fed, seed=5, secure=False), tmp_path / "plain")
    secure, plain = _model(secure_run), _model(tmp_path / "plain")
    assert secure.keys() == plain.keys()
    worst = max((secure[k] - plain[k]).abs().max().item() for k in secure)
    assert worst < 1e-3  # fixed-point rounding (2^-17 per hospital per round) only
    assert worst > 0  # the secure path really went through fixed point


def test_crash_names_the_hospital_and_resume_gives_the_same_model(fed, secure_run, tmp_path,
                                                                   monkeypatch) -> None:
    out = tmp_path / "crashed"
    monkeypatch.setenv("CRYPTEN_FL_FAIL_AT", "1:1")
    with pytest.raises(UserError, match=r"hospital 1 failed: RuntimeError: injected fault after "
                                        r"round 1.*Last completed round: 1.*--resume"):
        train(_config(fed, seed=5), out)
    assert not out.exists() and partial_dir(out).exists()
    monkeypatch.delenv("CRYPTEN_FL_FAIL_AT")
    summary = train(_config(fed, seed=5), out, resume=True)
    assert summary.resumed_from == 1
    resumed, straight = _model(out), _model(secure_run)
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_local_baseline_keeps_one_model_per_hospital_and_exchanges_nothing(fed, tmp_path) -> None:
    summary = train(_config(fed, strategy="local", rounds=1), tmp_path / "local")
    assert {p.name for p in summary.run_dir.glob("model*.safetensors")} == {
        "model_hospital_0.safetensors", "model_hospital_1.safetensors",
        "model_hospital_2.safetensors"}
    # only the normalisation moments and the test histograms were aggregated
    assert all(p["aggregation_calls"] == 2 for p in summary.comm["parties"].values())


def test_centralized_baseline_runs_as_one_process(fed, tmp_path) -> None:
    summary = train(_config(fed, strategy="centralized", rounds=1), tmp_path / "central")
    assert list(summary.comm["parties"]) == ["pooled"]
    assert set(summary.test_metrics["per_hospital"]) == {"hospital_0", "hospital_1", "hospital_2"}


def test_dp_sgd_spends_the_budget_over_the_whole_run_with_secure_noise(fed, tmp_path) -> None:
    summary = train(_config(fed, dp_epsilon=3.0, rounds=2), tmp_path / "dp")
    written = json.loads((summary.run_dir / "privacy.json").read_text())
    assert written == summary.privacy and len(written["hospitals"]) == 3
    for report in written["hospitals"].values():
        assert 2.5 < report["epsilon"] <= 3.0 + 1e-6
        assert report["noise_multiplier"] > 0 and report["max_grad_norm"] == 1.0
        assert report["secure_rng"] is True  # noise and Poisson sampling from the CSPRNG


@pytest.mark.parametrize("args, message", [
    (["--strategy", "nope"], "--strategy 'nope'"),
    (["--dp-epsilon", "-1"], "--dp-epsilon must be a positive finite number"),
    (["--dp-epsilon", "1e-9"], "--dp-epsilon must be at least 0.05 (below it the noise"),
    (["--dp-delta", "0.5"], "--dp-delta needs --dp-epsilon"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--mask-degree", "3"], "--mask-degree must be an even number >= 2"),
])
def test_bad_options_fail_before_any_process_starts(fed, tmp_path, args, message) -> None:
    result = runner.invoke(app, ["train", "--fed", str(fed), "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "r").exists() and not partial_dir(tmp_path / "r").exists()


def test_missing_federation_and_mismatched_schema(fed, tmp_path) -> None:
    result = runner.invoke(app, ["train", "--fed", str(tmp_path / "none"), "--out",
                                 str(tmp_path / "r")])
    assert result.exit_code == 1 and "directory not found" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in fed.iterdir():
        target = broken / item.name
        if item.is_dir():
            target.mkdir()
            for f in item.iterdir():
                target.joinpath(f.name).write_bytes(f.read_bytes())
        else:
            target.write_bytes(item.read_bytes())
    manifest = json.loads((broken / "hospital_2" / "manifest.json").read_text())
    manifest["features"] = manifest["features"][::-1]
    (broken / "hospital_2" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"--fed .*broken: .*schemas differ .*: hospital_2: "
                                         r"feature list in another order \(position 1: "
                                         r"urine_output, hospital_0 has heart_rate\)$"):
        train(_config(broken), tmp_path / "r2")
    manifest["counts"]["train"] = 0
    (broken / "hospital_2" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="hospital_2: the training split is empty"):
        train(_config(broken), tmp_path / "r3")


def _hospital_models(run: Path) -> list[dict[str, torch.Tensor]]:
    return [_model(run, f"model_hospital_{k}") for k in range(3)]


def _head_spread(models: list[dict[str, torch.Tensor]]) -> float:
    keys = [k for k in models[0] if k.startswith("head.")]
    return sum(torch.stack([m[k] for m in models]).std(dim=0).sum().item() for k in keys)


def test_fedper_shares_the_base_and_keeps_personal_heads(fed, tmp_path) -> None:
    models = _hospital_models(train(_config(fed, strategy="fedper", rounds=2,
                                            personal_layers=1), tmp_path / "fp").run_dir)
    last = "head.2." if any(k.startswith("head.2.") for k in models[0]) else "head.1."
    for key in models[0]:
        same = all(torch.equal(models[0][key], m[key]) for m in models[1:])
        assert same == (not key.startswith(last)), key


@pytest.mark.slow
def test_fedmtl_lambda_zero_is_fedper_and_large_lambda_pulls_heads_together(fed, tmp_path
                                                                             ) -> None:
    fedper = _hospital_models(train(_config(fed, strategy="fedper"), tmp_path / "fp").run_dir)
    free = _hospital_models(train(_config(fed, strategy="fedmtl", mtl_lambda=0.0),
                                  tmp_path / "m0").run_dir)
    tied = _hospital_models(train(_config(fed, strategy="fedmtl", mtl_lambda=500.0),
                                  tmp_path / "m1").run_dir)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(fedper, free, strict=True) for k in a)
    assert _head_spread(tied) < 0.2 * _head_spread(free)


def test_split_learning_trains_an_encrypted_server_and_reveals_it_at_the_end(fed, tmp_path
                                                                             ) -> None:
    summary = train(_config(fed, strategy="split", rounds=2), tmp_path / "split")
    model = _model(summary.run_dir)
    assert "head.1.weight" in model  # client part and revealed server part form one model
    for party in summary.comm["parties"].values():
        # besides the secure averaging of client parts, the encrypted server moved data
        assert party["crypten_bytes"] > 1.5 * party["bytes_communicated"]
    lines = (summary.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    macro = summary.test_metrics["overall"]["macro"]["auroc"]
    assert 0.0 < macro < 1.0


@pytest.fixture(scope="module")
def vertical_fed(fed) -> Path:
    out = fed.parent / "vfed"
    partition(fed.parent / "cohort", out, hospitals=None, vertical=True, seed=0)
    return out


def test_vertical_trains_with_psi_alignment_and_only_the_label_party_gets_metrics(
        vertical_fed, tmp_path) -> None:
    summary = train(_config(vertical_fed, strategy="vertical", rounds=2), tmp_path / "v")
    run = summary.run_dir
    assert {p.name for p in run.glob("model_party_*.safetensors")} == {
        "model_party_0.safetensors", "model_party_1.safetensors", "model_party_2.safetensors"}
    # the top model stays secret-shared: three int64 shares, none of them the weights
    shares = [load_file(str(run / f"top_share_party_{k}.safetensors")) for k in range(3)]
    assert all(t.dtype == torch.int64 for s in shares for t in s.values())
    assert list(summary.test_metrics["per_hospital"]) == ["hospital_0"]  # the label party
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["hospitals"]["1"]["train_loss"] is None  # no labels, no loss
    assert lines[0]["hospitals"]["0"]["train_loss"] > 0


def test_vertical_strategy_needs_a_vertical_partition(fed, vertical_fed, tmp_path) -> None:
    with pytest.raises(UserError, match="--strategy vertical needs a vertical partition"):
        train(_config(fed, strategy="vertical"), tmp_path / "a")
    with pytest.raises(UserError, match="--strategy horizontal needs a horizontal partition"):
        train(_config(vertical_fed), tmp_path / "b")


def test_cli_centralized_run_renders_the_pooled_trainer(fed, tmp_path) -> None:
    result = runner.invoke(app, ["train", "--fed", str(fed), "--out", str(tmp_path / "c"),
                                 "--strategy", "centralized", "--rounds", "1", "--d-model", "16",
                                 "--heads", "2", "--layers", "1"])
    assert result.exit_code == 0, result.output
    assert "pooled loss" in result.output and "macro" in result.output
