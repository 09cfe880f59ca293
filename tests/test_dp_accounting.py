"""Honest DP accounting (issue 12, item 5), end to end with real party processes.

For every strategy with DP-SGD (split's and vertical's own mechanisms: test_dp_split_vertical.py),
the ε each hospital reports in privacy.json must be what Opacus'
RDP accountant gives for the steps that hospital actually took: the noise multiplier calibrated
for the whole run, the sample rate of its Poisson batches (from the DP recipe's batch and its
training-set size), and rounds × local epochs × steps per epoch. The run spends its budget and
never more; an interrupted run resumed does not count the lost round twice, and a run cannot be
continued past the rounds its noise was calibrated for.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.local_training.dp_exchange import epsilon as replace_one_epsilon
from crypten_fl.fedtrain.local_training.dp_recipe import recipe_batch, recipe_lr
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.mimic_etl.hospital_data import load_split
from helpers.evaluate import SMALL, signal_federation, trained_run
from helpers.resume import crash_after_round_1_and_resume
from opacus.accountants import PRVAccountant, RDPAccountant

EPSILON, ROUNDS, LOCAL_EPOCHS = 2.0, 2, 2
#: the strategies run in the default suite; the others with DP-SGD are in the slow set
FAST = {"horizontal"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return signal_federation(tmp_path_factory.mktemp("dp-accounting"), n_patients=300)


def _dp_strategies() -> list:
    return [pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
            for name in strategies.available()
            if strategies.get(name).supports_dp_sgd and strategies.get(name).uses_dp_recipe]


def _train_sizes(fed: Path) -> dict[str, int]:
    dirs = sorted(fed.glob("hospital_*"))
    return {d.name.split("_")[1]: len(load_split(d, "train").keys) for d in dirs}


def _check_hospital(report: dict, n_train: int) -> None:
    batch = recipe_batch(n_train)
    steps_per_epoch = math.ceil(n_train / batch)
    assert report["expected_batch_size"] == batch
    assert report["dropout"] == 0.0 and "dropout" in report["recipe_chose"].split(",")
    assert report["sample_rate"] == pytest.approx(1 / steps_per_epoch, rel=1e-12)
    assert report["steps"] == ROUNDS * LOCAL_EPOCHS * steps_per_epoch
    assert report["lr"] == recipe_lr(report["steps"])  # the recipe's rate for the run's length
    assert report["delta"] == pytest.approx(n_train ** -1.1, rel=1e-12)
    assert report["accountant"] == "prv"  # Opacus' PRV accountant (tighter than RDP)
    accountant = PRVAccountant()
    accountant.history = [(report["noise_multiplier"], report["sample_rate"], report["steps"])]
    assert report["epsilon"] == pytest.approx(accountant.get_epsilon(report["delta"]), rel=1e-9)
    # the RDP accountant, which privacy.json used before, gives more for the same steps
    rdp = RDPAccountant()
    rdp.history = accountant.history
    assert rdp.get_epsilon(report["delta"]) > report["epsilon"]
    # the record counts are revealed (FedAvg weights): ε for replacing a record is given too
    assert report["epsilon_replace_one"] == pytest.approx(replace_one_epsilon(
        report["sample_rate"], report["noise_multiplier"], report["steps"], report["delta"]))
    assert report["epsilon_replace_one"] > report["epsilon"]
    # the noise was calibrated so that the run spends its whole budget (to within 0.01), never
    # more: Opacus' PRV accountant, fresh, gives that for the σ, rate and steps reported
    assert EPSILON - 0.01 <= report["epsilon"] <= EPSILON
    assert report["secure_rng"] is True


@pytest.mark.parametrize("strategy", _dp_strategies())
def test_privacy_json_epsilon_is_the_accountants_for_the_steps_taken(strategy, fed,
                                                                     tmp_path) -> None:
    run = trained_run(fed, tmp_path / "run", strategy=strategy, dp_epsilon=EPSILON,
                      rounds=ROUNDS, local_epochs=LOCAL_EPOCHS)
    privacy = json.loads((run / "privacy.json").read_text())
    assert privacy["dp_sgd"] is True and privacy["target_epsilon"] == EPSILON
    sizes = _train_sizes(fed)
    if strategy == "centralized":  # one trainer over the pooled training splits
        assert len(privacy["hospitals"]) == 1
        _check_hospital(next(iter(privacy["hospitals"].values())), sum(sizes.values()))
        return
    assert set(privacy["hospitals"]) == set(sizes)
    for hospital, report in privacy["hospitals"].items():
        _check_hospital(report, sizes[hospital])


@pytest.mark.slow  # 45 s; the default run keeps the trainer-level checks (test_local_trainer:
# the accountant across rounds, and a DP checkpoint restored)
def test_a_crashed_and_resumed_run_accounts_each_round_once(fed, tmp_path, monkeypatch) -> None:
    config = dict(SMALL, fed=str(fed), dp_epsilon=EPSILON, rounds=ROUNDS,
                  local_epochs=LOCAL_EPOCHS)

    out = tmp_path / "run"
    crash_after_round_1_and_resume(TrainConfig(**config), out, monkeypatch)
    privacy = json.loads((out / "privacy.json").read_text())
    sizes = _train_sizes(fed)
    for hospital, report in privacy["hospitals"].items():
        _check_hospital(report, sizes[hospital])
    # and the run cannot be stretched past the rounds its noise was calibrated for
    monkeypatch.setenv("CRYPTEN_FL_FAIL_AT", "1:1")
    with pytest.raises(UserError, match="Last completed round: 1"):
        train(TrainConfig(**config), tmp_path / "again")
    monkeypatch.delenv("CRYPTEN_FL_FAIL_AT")
    with pytest.raises(UserError, match="options differ from the interrupted run"):
        train(TrainConfig(**{**config, "rounds": ROUNDS + 1}), tmp_path / "again", resume=True)


def test_the_train_command_reports_each_hospitals_epsilon_and_points_to_pretraining(capsys
                                                                                   ) -> None:
    from crypten_fl.cli.train import render_dp_sgd

    report = {"epsilon": 2.994, "delta": 1e-4, "accountant": "prv"}
    two = {"0": report, "1": {**report, "epsilon": 2.991, "delta": 2e-4}}
    render_dp_sgd({"dp_sgd": True, "hospitals": two, "pretraining": None}, "horizontal")
    out = " ".join(capsys.readouterr().out.split())
    assert "record-level DP: ε = 2.99 per hospital (δ ≤ 0.0002, prv accountant" in out
    assert "crypten-fl pretrain" in out
    render_dp_sgd({"dp_sgd": True, "hospitals": {"0": report, "1": {**report, "epsilon": 1.5}},
                   "pretraining": {"model": "pub"}}, "horizontal")
    out = " ".join(capsys.readouterr().out.split())
    assert "ε = 1.50–2.99 per hospital" in out and "pretrain" not in out
    # vertical: what to expect, and the tip (its DP model starts from the public feature map)
    render_dp_sgd({"dp_sgd": True, "hospitals": two, "pretraining": None}, "vertical")
    out = " ".join(capsys.readouterr().out.split())
    assert "crypten-fl pretrain" in out and "vertical with DP trains a linear top model" in out
    render_dp_sgd({"dp_sgd": False, "hospitals": {}}, "horizontal")
    assert capsys.readouterr().out == ""
