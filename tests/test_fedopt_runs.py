"""Server optimizers and FedProx in real federated runs: the server step is applied from the
revealed mean and checkpointed state, it survives a crash and --resume bit for bit, and secure
and plain aggregation agree within fixed-point precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import train
from helpers.federation import TINY_MODEL, small_federation
from safetensors.torch import load_file

FEDADAM = {"rounds": 2, "seed": 5, "server_opt": "fedadam", "server_lr": 0.01,
           "prox_mu": 0.1, **TINY_MODEL}


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return small_federation(tmp_path_factory.mktemp("fed"), n_patients=240, seed=4, hospitals=3)


@pytest.fixture(scope="module")
def straight(fed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fedadam"
    train(TrainConfig(fed=str(fed), **FEDADAM), out)
    return out


def _checkpoint(run: Path, round_index: int, hospital: int = 0) -> dict:
    return torch.load(run / "checkpoints" / f"round_{round_index}" / f"hospital_{hospital}.pt",
                      weights_only=True)


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].reshape(-1).to(torch.float64) for k in sorted(state)])


def test_each_round_moves_the_global_model_by_the_adam_step(straight: Path) -> None:
    before, after = _checkpoint(straight, 1), _checkpoint(straight, 2)
    s1, s2 = before["strategy"], after["strategy"]
    assert int(s1["server_opt.steps"]) == 1 and int(s2["server_opt.steps"]) == 2
    # round 2's pseudo-gradient from the first moments, then Adam's v and step by hand
    delta = (s2["server_opt.m"] - 0.9 * s1["server_opt.m"]) / 0.1
    assert torch.allclose(s2["server_opt.v"], 0.99 * s1["server_opt.v"] + 0.01 * delta ** 2,
                          rtol=1e-9, atol=1e-18)
    x1, x2 = _flat(before["trainer"]["model"]), _flat(after["trainer"]["model"])
    step = 0.01 * s2["server_opt.m"] / (s2["server_opt.v"].sqrt() + 1e-3)
    assert torch.allclose(x2, (x1 + step).float().double(), rtol=0, atol=1e-7)
    assert (x2 - x1).abs().max() > 1e-4  # the model did move
    # every hospital holds the same server state and global model
    other = _checkpoint(straight, 2, hospital=2)
    assert torch.equal(other["strategy"]["server_opt.v"], s2["server_opt.v"])
    assert torch.equal(_flat(other["trainer"]["model"]), x2)


def test_a_crash_then_resume_continues_the_server_optimizer_bit_for_bit(
        fed, straight, tmp_path, monkeypatch) -> None:
    out = tmp_path / "crashed"
    monkeypatch.setenv("CRYPTEN_FL_FAIL_AT", "1:1")
    with pytest.raises(UserError, match=r"Last completed round: 1"):
        train(TrainConfig(fed=str(fed), **FEDADAM), out)
    monkeypatch.delenv("CRYPTEN_FL_FAIL_AT")
    summary = train(TrainConfig(fed=str(fed), **FEDADAM), out, resume=True)
    assert summary.resumed_from == 1
    resumed = load_file(str(out / "model.safetensors"))
    reference = load_file(str(straight / "model.safetensors"))
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


@pytest.mark.slow  # test_train checks secure = plain for FedAvg; bench/strategies.py for FedAdam
def test_secure_and_plain_fedadam_agree_within_fixed_point_precision(
        fed, straight, tmp_path) -> None:
    summary = train(TrainConfig(fed=str(fed), secure=False, **FEDADAM), tmp_path / "plain")
    plain = load_file(str(tmp_path / "plain" / "model.safetensors"))
    secure = load_file(str(straight / "model.safetensors"))
    worst = max((secure[k] - plain[k]).abs().max().item() for k in secure)
    # fixed-point rounding of the mean (2^-16) is amplified where a coordinate's pseudo-gradient
    # is near zero: Adam's step m/(√v + τ) there can change by up to ~η per round
    assert 0 < worst < FEDADAM["server_lr"]
    secure_auroc = _macro(straight)
    assert abs(summary.test_metrics["overall"]["macro"]["auroc"] - secure_auroc) <= 0.002


def _macro(run: Path) -> float:
    return json.loads((run / "test_metrics.json").read_text())["overall"]["macro"]["auroc"]
