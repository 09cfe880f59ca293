"""Update validation (issue 6): a hospital rejects its own non-finite or too long update, the
round goes on without it, and the rejection is logged and recorded in RUN/validation.json."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.faults import CORRUPT_UPDATE, corrupt, injected_corruption
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.strategies.base import SharedBlock, weighted_block_mean
from crypten_fl.fedtrain.strategies.fedmtl import FedMTL
from crypten_fl.fedtrain.updates.validation import (
    ABOVE_BOUND,
    NON_FINITE,
    UpdateCheck,
    ValidationLog,
    check_update,
)
from helpers.update_sharing import (
    ONE_ROUND,
    federation_with_local_models,
    max_difference,
)
from safetensors.torch import load_file


def test_check_update_rejects_non_finite_always_and_long_updates_above_the_bound() -> None:
    x = torch.tensor([3.0, 4.0])
    assert check_update(x, None) == UpdateCheck(True, 5.0)
    assert check_update(x, 5.0) == UpdateCheck(True, 5.0)  # on the bound: accepted
    assert check_update(x, 4.99) == UpdateCheck(False, 5.0, ABOVE_BOUND)
    for bad in (math.nan, math.inf, -math.inf):
        check = check_update(torch.tensor([1.0, bad]), 1e9)
        assert not check.accepted and check.reason == NON_FINITE
        assert not check_update(torch.tensor([1.0, bad]), None).accepted


def test_validation_log_counts_records_and_survives_a_checkpoint(tmp_path) -> None:
    log = ValidationLog()
    assert log.record(1, UpdateCheck(True, 0.5)) is None
    log.record(2, UpdateCheck(False, math.nan, NON_FINITE))
    log.record(3, UpdateCheck(False, 7.25, ABOVE_BOUND))
    torch.save(log.state(), tmp_path / "state.pt")
    restored = ValidationLog.from_state(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.report() == log.report() == {
        "checked": 3, "rejected": 2,
        "rejections": [{"round": 2, "reason": NON_FINITE, "norm": None},
                       {"round": 3, "reason": ABOVE_BOUND, "norm": 7.25}]}
    assert ValidationLog.from_state({}).report() == {"checked": 0, "rejected": 0, "rejections": []}


def test_injected_corruption_targets_one_hospital_and_round(monkeypatch) -> None:
    monkeypatch.delenv(CORRUPT_UPDATE, raising=False)
    assert injected_corruption(1, 2) is None
    monkeypatch.setenv(CORRUPT_UPDATE, "1:2")
    assert math.isnan(injected_corruption(1, 2))  # type: ignore[arg-type]
    assert injected_corruption(1, 3) is None and injected_corruption(2, 2) is None
    assert injected_corruption(11, 2) is None
    monkeypatch.setenv(CORRUPT_UPDATE, "1:2:1000")
    assert injected_corruption(1, 2) == 1000.0
    x = torch.tensor([1.0, -2.0])
    assert torch.equal(corrupt(x, 3.0), torch.tensor([3.0, -6.0]))
    nan = corrupt(x, math.nan)
    assert math.isnan(nan[0]) and nan[1] == -2.0 and x[0] == 1.0  # the input is left alone


class _Capture:
    """Stands in for the secure sum while each simulated hospital builds its contribution."""

    def __init__(self) -> None:
        self.sent: list[tuple[torch.Tensor, str]] = []

    def sum(self, x: torch.Tensor, what: str) -> torch.Tensor:
        self.sent.append((x.clone(), what))
        return torch.zeros_like(x)


def _block(values: list[float], weight: float, base: float = 9.0) -> SharedBlock:
    like = {"w": torch.zeros(len(values))}
    return SharedBlock(tags.WEIGHTED_MODEL_SUM, weight, {"w": torch.tensor(values)}, like,
                       {"w": torch.full((len(values),), base)})


def _simulate(blocks: list[SharedBlock], accepted: list[bool]) -> list[dict[str, torch.Tensor]]:
    """Every hospital's result of weighted_block_mean over one simulated secure sum."""
    capture = _Capture()
    for block, ok in zip(blocks, accepted, strict=True):
        weighted_block_mean(capture, block, ok)
    assert all(what == tags.WEIGHTED_MODEL_SUM for _, what in capture.sent)
    assert all(bool(torch.isfinite(x).all()) for x, _ in capture.sent)  # nothing non-finite sent
    total = torch.stack([x for x, _ in capture.sent]).sum(dim=0)
    reveal = SimpleNamespace(sum=lambda x, what: total.clone())
    return [weighted_block_mean(reveal, block, ok) for block, ok in zip(blocks, accepted,
                                                                          strict=True)]


def test_a_rejected_hospital_contributes_nothing_and_adopts_the_mean_of_the_others() -> None:
    blocks = [_block([1.0, 2.0], 10), _block([math.nan, 5.0], 30), _block([4.0, 8.0], 30)]
    results = _simulate(blocks, [True, False, True])
    expected = torch.tensor([(10 * 1.0 + 30 * 4.0) / 40, (10 * 2.0 + 30 * 8.0) / 40])
    for result in results:  # the same new global values at every hospital, the rejected one too
        assert torch.allclose(result["w"].double(), expected.double(), rtol=0, atol=1e-6)


def test_if_no_hospital_is_accepted_the_common_values_stay() -> None:
    blocks = [_block([1.0], 10), _block([math.inf], 20)]
    for result in _simulate(blocks, [False, False]):
        assert torch.equal(result["w"], torch.tensor([9.0]))


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return federation_with_local_models(tmp_path_factory)


def _mean(models: list[dict[str, torch.Tensor]], weights: list[int], keys: list[str]
          ) -> dict[str, torch.Tensor]:
    total = sum(weights)
    return {k: sum(w * m[k].double() for m, w in zip(models, weights, strict=True)) / total
            for k in keys}


def test_a_non_finite_update_is_rejected_and_the_round_goes_on_without_it(local, tmp_path,
                                                                           monkeypatch) -> None:
    monkeypatch.setenv(CORRUPT_UPDATE, "1:1")
    events: list[dict] = []
    summary = train(TrainConfig(fed=str(local.fed), **ONE_ROUND), tmp_path / "run",
                    on_event=lambda rank, event: events.append(event))
    rejected = [e for e in events if e["event"] == "update_rejected"]
    assert [(e["hospital"], e["round"], e["reason"], e["norm"]) for e in rejected] == [
        (1, 1, NON_FINITE, None)]
    model = load_file(str(summary.run_dir / "model.safetensors"))
    keys = sorted(model)
    n = local.n_train
    others = _mean([local.trained[0], local.trained[2]], [n[0], n[2]], keys)
    assert max_difference(model, others) < 1e-5  # fixed-point (and float32) rounding only
    everyone = _mean(local.trained, n, keys)
    assert max_difference(model, everyone) > 1e-4  # hospital 1 really was left out
    validation = json.loads((summary.run_dir / "validation.json").read_text())
    assert validation["rejected_per_hospital"] == {"0": 0, "1": 1, "2": 0}
    assert validation["hospitals"]["1"]["rejections"] == [
        {"round": 1, "reason": NON_FINITE, "norm": None}]


def test_an_update_above_the_norm_bound_is_rejected_in_fedmtl(local, tmp_path, monkeypatch
                                                              ) -> None:
    monkeypatch.setenv(CORRUPT_UPDATE, "2:1:1000")  # hospital 2's update × 1000
    summary = train(TrainConfig(fed=str(local.fed), strategy="fedmtl", mtl_lambda=0.0,
                                max_update_norm=1.0, **ONE_ROUND), tmp_path / "run")
    models = [load_file(str(summary.run_dir / f"model_hospital_{k}.safetensors"))
              for k in range(3)]
    last = max(int(key.split(".")[1]) for key in models[0] if key.startswith("head."))
    personal = sorted(key for key in models[0] if key.startswith(f"head.{last}."))
    shared = sorted(key for key in models[0] if key not in personal)
    expected = _mean(local.trained[:2], local.n_train[:2], shared)
    for k in range(3):  # every hospital adopts the mean of hospitals 0 and 1
        assert max_difference({key: models[k][key] for key in shared}, expected) < 1e-5
    for k in range(2):  # their own heads are theirs (λ = 0: no pull)
        assert all(torch.equal(models[k][key], local.trained[k][key]) for key in personal)
    # the rejected hospital's personal layer is back where the round started
    assert all(torch.equal(models[2][key], local.initial[key]) for key in personal)
    report = json.loads((summary.run_dir / "validation.json").read_text())["hospitals"]
    assert [r["rejected"] for r in report.values()] == [0, 0, 1]
    (rejection,) = report["2"]["rejections"]
    assert rejection["reason"] == ABOVE_BOUND
    joint = torch.cat([local.update(2, shared), local.update(2, personal)])
    assert rejection["norm"] == pytest.approx(1000 * float(joint.norm()), rel=1e-4)


def test_fedmtl_checkpoints_its_anchor_and_validation_log() -> None:
    state = {"encoder.w": torch.ones(2), "head.0.w": torch.zeros(3)}
    model = SimpleNamespace(is_shared_key=lambda key, layers: key.startswith("encoder."))
    session = SimpleNamespace(trainer=SimpleNamespace(state_dict=lambda: dict(state), model=model),
                              aggregator=SimpleNamespace(world_size=3))
    config = TrainConfig(fed="unused", strategy="fedmtl")
    first = FedMTL(config, session)
    first.anchor = {"head.0.w": torch.tensor([1.0, 2.0, 3.0])}
    first.validation.record(4, UpdateCheck(False, 2.0, ABOVE_BOUND))
    resumed = FedMTL(config, session)
    assert torch.equal(resumed.anchor["head.0.w"], torch.zeros(3))  # before the restore
    resumed.load_extra_state(first.extra_state())
    assert torch.equal(resumed.anchor["head.0.w"], torch.tensor([1.0, 2.0, 3.0]))
    assert resumed.validation_report() == first.validation_report()


def test_the_train_command_lists_rejected_updates_and_the_hospital_level_epsilon(tmp_path,
                                                                                  capsys) -> None:
    from crypten_fl.cli.train import render_update_checks

    (tmp_path / "validation.json").write_text(json.dumps({"hospitals": {
        "0": {"checked": 2, "rejected": 0, "rejections": []},
        "1": {"checked": 2, "rejected": 1,
              "rejections": [{"round": 2, "reason": NON_FINITE, "norm": None}]}}}))
    central = {"epsilon": 30.126, "delta": 1e-5, "noise_multiplier": 1.0, "clip": 0.5,
               "epsilon_all_others_collude": 81.116}
    render_update_checks(SimpleNamespace(run_dir=tmp_path, privacy={"central_dp": central}))
    out = " ".join(capsys.readouterr().out.split())
    assert "hospital-level DP: ε = 30.13 (δ = 1e-05, noise multiplier 1, clip 0.5)" in out
    assert "ε = 81.12 if all other hospitals collude" in out
    assert "updates rejected before sharing" in out and "non-finite" in out
    render_update_checks(SimpleNamespace(run_dir=tmp_path / "none", privacy={"central_dp": None}))
    assert capsys.readouterr().out == ""
