"""Record-level DP for split and vertical learning (fedtrain/local_training/dp_exchange.py).

The accounting is checked against Opacus' own RDP functions for the steps actually taken; the
mechanisms are checked in real training runs (real party processes and TTP dealer) by recording
what each party adds to what it secret-shares (tests/helpers/dp_jobs.py), and the clipping
bounds by gradients computed with autograd.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.local_training.dp_exchange import (
    ALPHAS,
    calibrate,
    clip_linear_gradients,
    clip_rows,
    epsilon,
)
from crypten_fl.fedtrain.run import coordinator
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.strategies.split import DP_BATCH
from crypten_fl.fedtrain.strategies.vertical_private import gradient_bound
from helpers.dp_checks import (
    check_evaluate_predicts_as_trained,
    check_exchange_accounting,
    opacus_rdp_epsilon,
)
from helpers.dp_jobs import DP_DIR_ENV, JOB
from helpers.federation import TINY_MODEL, both_federations
from helpers.parties import HELPERS
from helpers.resume import crash_after_round_1_and_resume
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

#: one round of two local epochs; a generous timeout: DP setup (Opacus) on a loaded machine
ONE_ROUND = {**TINY_MODEL, "rounds": 1, "timeout": 180}


def test_clipped_rows_have_norm_at_most_the_bound_and_short_rows_are_unchanged() -> None:
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4], [1e6, -1e6]])
    clipped = clip_rows(x, 1.0)
    assert clipped.norm(dim=1).max() <= 1.0
    assert torch.equal(clipped[1], x[1])
    assert torch.allclose(clipped[0], torch.tensor([0.6, 0.8]), atol=1e-6)


def test_a_huge_record_moves_a_linear_layers_gradient_by_at_most_the_bound() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    h = torch.randn(6, 5)
    h[0] *= 1e5  # one huge record
    g = torch.sigmoid(layer(h)).detach() - torch.tensor([[1.0, 0.0, 1.0]] * 6)
    g[5] = 0.01  # a small one, inside the bound: unchanged
    bounded = clip_linear_gradients(g, h, bound=0.5)
    assert torch.equal(bounded[5], g[5])
    for i in range(6):  # the per-example gradient of the layer, by autograd
        layer.zero_grad()
        (layer(h[i : i + 1]) * bounded[i : i + 1]).sum().backward()
        norm = torch.cat([layer.weight.grad.flatten(), layer.bias.grad]).norm()
        assert norm <= 0.5
        if i == 0:
            assert norm == pytest.approx(0.5, rel=1e-4)  # clipped to the bound, not below


def _triangle(q: float, sigma: float, steps: int, delta: float) -> float:
    """Replace-one ε from Opacus' add/remove RDP by the weak triangle inequality."""
    a = np.asarray(ALPHAS)
    rdp = ((a - 0.5) / (a - 1) * compute_rdp(q=q, noise_multiplier=sigma, steps=steps,
                                                orders=2 * a)
           + compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=2 * a - 1))
    return float(get_privacy_spent(orders=ALPHAS, rdp=rdp, delta=delta)[0])


@pytest.mark.parametrize("q, steps", [(0.25, 40), (1.0, 10)])
def test_replace_one_epsilon_is_opacus_rdp_and_calibration_reaches_the_target(q, steps) -> None:
    sigma = calibrate(3.0, q, steps, 1e-4)
    spent = epsilon(q, sigma, steps, 1e-4)
    assert 2.99 <= spent <= 3.0
    if q == 1.0:  # no sampling: the Gaussian mechanism of sensitivity 2, exactly
        assert spent == opacus_rdp_epsilon(sigma / 2, 1.0, steps, 1e-4)
    else:
        assert spent == _triangle(q, sigma, steps, 1e-4)
        # replace-one costs more than add/remove
        assert spent > opacus_rdp_epsilon(sigma, q, steps, 1e-4)
    assert calibrate(1.0, q, steps, 1e-4) > sigma > calibrate(8.0, q, steps, 1e-4)


@pytest.fixture(scope="module")
def feds(tmp_path_factory) -> dict[str, Path]:
    feds = both_federations(tmp_path_factory.mktemp("dp-feds"), n_patients=150, seed=3)
    return {"split": feds["horizontal"], "vertical": feds["vertical"]}


def _recorded_run(config: TrainConfig, tmp_path: Path, monkeypatch) -> tuple[dict, dict]:
    """Train with the recording job; privacy.json and each party's record."""
    record_dir = tmp_path / "record"
    record_dir.mkdir()
    monkeypatch.setattr(coordinator, "JOB", JOB)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HELPERS.parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv(DP_DIR_ENV, str(record_dir))
    summary = train(config, tmp_path / "run")
    records = {p.stem: torch.load(p) for p in record_dir.glob("*.pt")}
    return summary.privacy, records


@pytest.mark.parametrize("noise", ["local", "distributed", "dealer"])
def test_split_with_dp_accounts_every_step_and_noises_each_hospitals_share(
        noise, feds, tmp_path, monkeypatch) -> None:
    # the steps follow the DP batch (default DP_BATCH, or --dp-batch-size), not --batch-size
    batch = {"dp_batch_size": 20} if noise == "distributed" else {}
    config = TrainConfig(fed=str(feds["split"]), strategy="split", dp_epsilon=2.0,
                         dp_noise=noise, **{**ONE_ROUND, "batch_size": 10}, **batch)
    privacy, records = _recorded_run(config, tmp_path, monkeypatch)
    sizes = [json.loads((feds["split"] / f"hospital_{k}" / "manifest.json").read_text())
             ["counts"]["train"] for k in range(3)]
    steps_per_epoch = max(math.ceil(n / (config.dp_batch_size or DP_BATCH)) for n in sizes)
    assert privacy["dp_sgd"] is True and set(privacy["hospitals"]) == {"0", "1", "2"}
    for hospital, report in privacy["hospitals"].items():
        check_exchange_accounting(report, 2.0, steps_per_epoch * config.local_epochs)
        assert report["sample_rate"] == 1 / steps_per_epoch
        assert report["mechanisms_per_step"] == 2
        # what the hospital added to its share of the encrypted server gradient, every step
        _check_added_noise(report, records[hospital]["share_delta"], noise)
    if noise == "dealer":
        _check_dealer(privacy["hospitals"], records)


def _check_added_noise(report: dict, deltas: list[torch.Tensor], noise: str) -> None:
    """What one of the three parties added to its share of the encrypted weight and bias
    gradients, every step: N(0, (ν·bound)²) with local noise; a 1/(P − 1) share of that variance
    with distributed noise (any one other party sees ν·bound); with the dealer's noise a share
    that is noise only summed with the others' (:func:`_check_dealer`)."""
    assert len(deltas) == 2 * report["steps"]  # weight and bias, each step
    if noise == "dealer":
        return
    added = torch.cat(deltas)
    std = report["noise_multiplier"] * report["max_grad_norm"]
    if noise == "distributed":
        std /= math.sqrt(2)
        _check_distributed(report, std)
    assert float(added.std()) == pytest.approx(std, rel=0.1)
    assert abs(float(added.mean())) < 6 * std / math.sqrt(added.numel())


def _check_dealer(reports: dict, records: dict) -> None:
    """The attacker is any party, or all of them but one: each one's share of the dealer's noise
    is a uniform ring element (nothing Gaussian, nothing it could subtract), and only the sum
    of all the parties' shares is the noise — one draw of std ν·B, not P of them."""
    report = reports["0"]
    std = report["noise_multiplier"] * report["max_grad_norm"]
    assert report["noise"] == "dealer" and report["dealer_noise_std"] == pytest.approx(std)
    assert "against any coalition of parties" in report["guarantee"]
    rings = [torch.cat(records[p]["share_delta_ring"]) for p in sorted(records)]
    total = sum(rings[1:], rings[0]).double() / 2**16  # ring sum, decoded
    assert float(total.std()) == pytest.approx(std, rel=0.1)
    assert abs(float(total.mean())) < 6 * std / math.sqrt(total.numel())
    for party, ring in enumerate(rings):
        alone = ring.double() / 2**16
        assert float(alone.std()) > 1e6 * std, party  # uniform over the ring: ≈ 2^63/2^16/√3
        without = (total - alone)  # what all the other parties together hold
        assert float(without.std()) > 1e6 * std, party


def _check_distributed(report: dict, share_std: float) -> None:
    """Any one other party sees the full mechanism (ε as reported); two colluding see less
    noise on the shared mechanism (more ε); an observer holding no share sees more (less ε)."""
    assert report["noise_share_std"] == pytest.approx(share_std)
    colluding = report["epsilon_by_colluding_hospitals"]
    assert report["epsilon"] == epsilon(report["sample_rate"],
                                        report["combined_noise_multiplier"], report["steps"],
                                        report["delta"])
    assert colluding["1"] == pytest.approx(report["epsilon"], rel=1e-9)
    assert colluding["2"] > report["epsilon"]
    assert report["epsilon_observer_without_share"] < report["epsilon"]


@pytest.mark.parametrize("noise", ["local", "distributed", "dealer"])
def test_vertical_with_dp_noises_each_partys_share_of_every_gradient_sum(noise, feds, tmp_path,
                                                                          monkeypatch) -> None:
    config = TrainConfig(fed=str(feds["vertical"]), strategy="vertical", dp_epsilon=4.0,
                         dp_noise=noise, **ONE_ROUND)
    privacy, records = _recorded_run(config, tmp_path, monkeypatch)
    assert set(privacy["hospitals"]) == {"0", "1", "2"}
    for party, report in privacy["hospitals"].items():
        check_exchange_accounting(report, 4.0, config.rounds * config.local_epochs)
        assert report["sample_rate"] == 1.0  # every record in every step: nothing sampled
        assert report["mechanisms_per_step"] == 1
        assert report["max_grad_norm"] == gradient_bound(3, 12) == 0.5 * math.sqrt(12) * 2
        # what the party added to its share of the encrypted top-model gradient, every step
        _check_added_noise(report, records[party]["share_delta"], noise)
    if noise == "dealer":
        _check_dealer(privacy["hospitals"], records)
    if noise != "local":
        return
    # the saved model (each party's feature widths and top share) predicts as in training,
    # although evaluate's configuration has no --dp-epsilon
    check_evaluate_predicts_as_trained(tmp_path / "run")


@pytest.mark.parametrize(("changes", "message"), [
    ({"cut": 2, "head_hidden": 16}, r"^--dp-epsilon with --strategy vertical trains a linear "),
    ({"max_grad_norm": 2.0}, r"^--max-grad-norm is not used by --strategy vertical: ")])
def test_vertical_refuses_dp_options_its_linear_model_cannot_use(changes, message, feds,
                                                                 tmp_path) -> None:
    with pytest.raises(UserError, match=message):
        train(TrainConfig(fed=str(feds["vertical"]), strategy="vertical", dp_epsilon=3.0,
                          **{**ONE_ROUND, **changes}), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_split_refuses_dp_with_a_two_layer_server(feds, tmp_path) -> None:
    with pytest.raises(UserError, match=r"^--dp-epsilon with --strategy split needs --cut 1 "):
        train(TrainConfig(fed=str(feds["split"]), strategy="split", cut=2, dp_epsilon=3.0,
                          **ONE_ROUND), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("noise", ["distributed", "dealer"])
def test_splits_shared_noise_changes_only_the_server_layers_noise(noise, feds) -> None:
    # unlike horizontal's and FedPer's distributed DP-SGD, the client parts are still averaged
    # every round: the same exchanges, and the options acting on updates still hold
    config = TrainConfig(fed=str(feds["split"]), strategy="split", dp_epsilon=3.0,
                         dp_noise=noise, prox_mu=0.1, max_update_norm=5.0, **ONE_ROUND)
    strategies.validate(config)
    split = strategies.get("split")
    local = dataclasses.replace(config, dp_noise="local")
    assert split.receives_with(config) == split.receives_with(local)
    assert tags.NOISY_GRADIENT_SUM not in split.receives_with(config)


@pytest.mark.parametrize("strategy", ["horizontal", "fedper", "fedmtl"])
def test_dealer_noise_is_refused_where_no_dealer_runs(strategy, feds, tmp_path) -> None:
    with pytest.raises(UserError, match=r"^--dp-noise dealer works with --strategy split, "
                                        rf"vertical, not {strategy} "):
        train(TrainConfig(fed=str(feds["split"]), strategy=strategy, dp_epsilon=3.0,
                          dp_noise="dealer", **ONE_ROUND), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # two runs of two rounds per strategy (≈ 1 min each)
@pytest.mark.parametrize("strategy", ["split", "vertical"])
def test_a_crashed_and_resumed_dp_run_accounts_every_step_once(strategy, feds, tmp_path,
                                                               monkeypatch) -> None:
    """A party's accountant is checkpointed with its round: resumed after a crash in round 2
    of 2, the run reports the steps of both rounds, not those since the restart."""
    config = TrainConfig(fed=str(feds[strategy]), strategy=strategy, dp_epsilon=3.0,
                         **{**ONE_ROUND, "rounds": 2})
    summary = crash_after_round_1_and_resume(config, tmp_path / "run", monkeypatch)
    per_epoch = {"split": max(math.ceil(json.loads(
        (feds["split"] / f"hospital_{k}" / "manifest.json").read_text())["counts"]["train"]
        / DP_BATCH) for k in range(3)), "vertical": 1}[strategy]
    planned = per_epoch * config.local_epochs * config.rounds
    for report in summary.privacy["hospitals"].values():
        check_exchange_accounting(report, 3.0, planned)
