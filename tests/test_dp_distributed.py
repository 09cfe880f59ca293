"""DP-SGD with distributed noise (``--dp-noise distributed``, horizontal and FedPer): real party
processes.

One run of three hospitals per strategy records, at every DP-SGD step, what each hospital hands
to the secure sum and what is revealed (helpers/dp_distributed_jobs.py), with the reveal audit
on. Checked:

- the revealed sum is the sum of the shares, every hospital sees the same one and, applying it,
  ends every round with the same shared parameters (horizontal: the whole model; FedPer: all but
  the personal layers, which differ between hospitals and never enter a sum);
- FedPer's personal layers carry the hospital's full noise σ·C, and are scaled by its own
  expected batch;
- each hospital's noise share has std σ·C/√(K − 1), the shares are independent;
- the attacker: a hospital that knows its own share and even every other hospital's clipped
  gradient sum is left with noise of std σ·C on them, the multiplier privacy.json's ε is for;
- privacy.json's ε is Opacus' PRV ε for the federation's sample rate 1/S and the steps taken,
  σ calibrated to the target, and the colluding-hospital ε's follow σ·√((K − c)/(K − 1));
- the parties obtain only the record count and the noisy gradient sums (never a model mean);
- the options that cannot hold with it are refused.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import pytest
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.local_training import dp_distributed, dp_recipe
from crypten_fl.fedtrain.run import coordinator
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.secure import tags
from crypten_fl.mimic_etl.hospital_data import load_split
from helpers.dp_distributed_jobs import JOB
from helpers.dp_jobs import DP_DIR_ENV
from helpers.evaluate import signal_federation
from helpers.federation import TINY_MODEL
from helpers.parties import HELPERS
from helpers.resume import crash_after_round_1_and_resume
from hypothesis import given
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant
from safetensors.torch import load_file

EPSILON, ROUNDS, HOSPITALS = 2.0, 2, 3
CONFIG = {**TINY_MODEL, "strategy": "horizontal", "dp_epsilon": EPSILON,
          "dp_noise": "distributed", "rounds": ROUNDS, "local_epochs": 1, "timeout": 180}


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return signal_federation(tmp_path_factory.mktemp("dp-distributed"), n_patients=300,
                             hospitals=HOSPITALS)


@pytest.fixture(scope="module", params=["horizontal", "fedper"])
def recorded(request, fed, tmp_path_factory) -> dict:
    """One recorded, audited run per strategy: privacy.json, each hospital's record, the reveal
    audit."""
    strategy = request.param
    root = tmp_path_factory.mktemp(f"dp-distributed-{strategy}")
    (root / "record").mkdir()
    (root / "audit").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(coordinator, "JOB", JOB)
        patch.setenv("PYTHONPATH", os.pathsep.join([str(HELPERS.parent),
                                                    os.environ.get("PYTHONPATH", "")]))
        patch.setenv(DP_DIR_ENV, str(root / "record"))
        patch.setenv("CRYPTEN_FL_AUDIT", str(root / "audit"))
        summary = train(TrainConfig(fed=str(fed), **{**CONFIG, "strategy": strategy}),
                        root / "run")
    records = {int(p.stem): torch.load(p) for p in (root / "record").glob("*.pt")}
    reveals = {rank: {json.loads(line)["tag"] for line in
                      (root / "audit" / f"reveals_{rank}.jsonl").read_text().splitlines()}
               for rank in range(HOSPITALS)}
    return {"strategy": strategy, "privacy": summary.privacy, "records": records,
            "reveals": reveals, "run": root / "run"}


def _records_total(fed: Path) -> int:
    return sum(len(load_split(d, "train").keys) for d in sorted(fed.glob("hospital_*")))


def test_every_hospital_applies_the_same_revealed_sum_of_the_shares(recorded) -> None:
    records = recorded["records"]
    assert set(records) == set(range(HOSPITALS))
    steps = len(records[0]["shared"])
    assert steps > 0 and all(len(r["shared"]) == steps == len(r["total"]) for r in
                             records.values())
    for t in range(steps):
        total = records[0]["total"][t]
        for r in records.values():  # one revealed sum, the same everywhere ...
            assert torch.equal(r["total"][t], total)
        # ... equal to the sum of what the hospitals shared (fixed point 2^-16 each)
        shared = sum(r["shared"][t] for r in records.values())
        assert torch.allclose(total, shared, rtol=0, atol=HOSPITALS * 2.0 ** -16)
    digests = [r["digests"] for r in records.values()]
    assert len(digests[0]) == ROUNDS and all(d == digests[0] for d in digests)
    models = [r["model_digests"] for r in records.values()]
    if recorded["strategy"] == "horizontal":  # one model
        assert all(m == models[0] for m in models)
    else:  # every hospital its own personal layers
        assert len({m[-1] for m in models}) == HOSPITALS


def test_only_the_shared_parameters_are_summed_the_personal_ones_get_the_full_noise(
        recorded, fed) -> None:
    records, report = recorded["records"], recorded["privacy"]["hospitals"]["0"]
    sigma, clip = report["noise_multiplier"], report["max_grad_norm"]
    saved = load_file(sorted(recorded["run"].glob("model*.safetensors"))[0])
    personal = sum(v.numel() for k, v in saved.items() if k.startswith("head.1."))
    n_all = sum(v.numel() for v in saved.values())
    for k, r in records.items():
        if recorded["strategy"] == "horizontal":
            assert r["local_clipped"] == [] and r["shared"][0].numel() == n_all
            assert "personal_layers" not in report
            continue
        assert report["personal_layers"] == ("head.1: never summed or sent; noised with this "
                                             "hospital's full noise")
        # FedPer: the output layer (its personal layer) never enters the secure sum ...
        assert personal == 16 * 12 + 12 and r["shared"][0].numel() == n_all - personal
        assert len(r["local_clipped"]) == len(r["shared"])
        # ... carries this hospital's full noise σ·C (not a 1/√(K − 1) share) ...
        noise = torch.cat(r["local_noisy"]) - torch.cat(r["local_clipped"])
        assert float(noise.std()) == pytest.approx(sigma * clip, rel=0.05)
        # ... and is scaled by the hospital's own expected batch, N_k / S, not the federation's
        n_k = len(load_split(fed / f"hospital_{k}", "train").keys)
        steps_per_epoch = round(1 / report["sample_rate"])
        own_batch = n_k / steps_per_epoch
        assert r["local_scale"][0] == pytest.approx(report["expected_batch_size"] / own_batch)


def test_each_share_carries_its_part_of_the_noise_and_an_observer_is_left_with_sigma(
        recorded) -> None:
    records, privacy = recorded["records"], recorded["privacy"]["hospitals"]
    report = privacy["0"]
    sigma, clip = report["noise_multiplier"], report["max_grad_norm"]
    noises = {k: torch.cat(r["shared"]) - torch.cat(r["clipped"]) for k, r in records.items()}
    share_std = sigma * clip / math.sqrt(HOSPITALS - 1)
    assert report["noise_share_std"] == pytest.approx(share_std)
    for noise in noises.values():
        assert float(noise.std()) == pytest.approx(share_std, rel=0.05)
        assert abs(float(noise.mean())) < 6 * share_std / math.sqrt(noise.numel())
    # independent: no hospital can predict another's share (a shared or seeded stream would)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        corr = float(torch.corrcoef(torch.stack([noises[a], noises[b]]))[0, 1])
        assert abs(corr) < 0.05
    # the attacker: hospital j subtracts its own share and every other hospital's clipped sum
    # from what is revealed; what is left of the noise has std σ·C, not less
    total = torch.cat(records[0]["total"])
    clipped = {k: torch.cat(r["clipped"]) for k, r in records.items()}
    for j in records:
        left = total - torch.cat(records[j]["shared"]) - sum(
            clipped[k] for k in records if k != j)
        assert float(left.std()) == pytest.approx(sigma * clip, rel=0.05)


def test_privacy_json_is_the_accountants_epsilon_for_the_federations_steps(recorded,
                                                                          fed) -> None:
    privacy, records = recorded["privacy"], recorded["records"]
    n = _records_total(fed)
    batch = dp_distributed.federation_batch(n, HOSPITALS)
    steps_per_epoch = math.ceil(n / batch)
    steps = ROUNDS * 1 * steps_per_epoch
    assert privacy["dp_sgd"] is True and set(privacy["hospitals"]) == {"0", "1", "2"}
    reports = list(privacy["hospitals"].values())
    assert all(r == reports[0] for r in reports)  # one federation, one accountant's figures
    report = reports[0]
    delta = n ** -1.1
    assert report["steps"] == steps == len(records[0]["shared"])
    assert report["lr"] == dp_recipe.recipe_lr(steps)  # the federation's steps set the rate
    assert report["sample_rate"] == pytest.approx(1 / steps_per_epoch, rel=1e-12)
    assert report["delta"] == pytest.approx(delta, rel=1e-12)
    assert report["federation_records"] == n and report["expected_batch_size"] == batch
    sigma = report["noise_multiplier"]

    def prv(multiplier: float) -> float:
        accountant = PRVAccountant()
        accountant.history = [(multiplier, 1 / steps_per_epoch, steps)]
        return accountant.get_epsilon(delta)

    assert report["accountant"] == "prv"
    assert report["epsilon"] == pytest.approx(prv(sigma), rel=1e-9)
    # calibrated to spend the whole budget to within 0.01, never more (fresh PRV accountant)
    assert EPSILON - 0.01 <= prv(sigma) <= EPSILON
    colluding = report["epsilon_by_colluding_hospitals"]
    assert colluding["1"] == pytest.approx(report["epsilon"], rel=1e-9)
    assert colluding["2"] == pytest.approx(prv(sigma / math.sqrt(2)), rel=1e-9)
    assert colluding["2"] > report["epsilon"] > report["epsilon_observer_without_share"]
    assert report["secure_rng"] is True and report["noise"] == "distributed"


def test_the_parties_obtain_the_record_count_and_noisy_gradient_sums_only(recorded, fed
                                                                          ) -> None:
    config = TrainConfig(fed=str(fed), **{**CONFIG, "strategy": recorded["strategy"]})
    declared = strategies.get(recorded["strategy"]).receives_with(config)
    assert declared == {tags.MOMENTS, tags.TRAINING_RECORDS, tags.NOISY_GRADIENT_SUM,
                        tags.METRIC_HISTOGRAMS}
    for obtained in recorded["reveals"].values():
        assert obtained == declared


@given(hospitals=st.integers(2, 50), sigma=st.floats(0.1, 20))
def test_the_shares_of_any_k_minus_1_hospitals_add_up_to_sigma(hospitals, sigma) -> None:
    plan = dp_distributed.plan(1000, hospitals)
    assert (hospitals - 1) * plan.noise_share ** 2 == pytest.approx(1.0)
    left = [dp_distributed.multiplier_left(sigma, hospitals, c) for c in range(hospitals)]
    assert left[1] == pytest.approx(sigma)
    assert all(a > b for a, b in itertools.pairwise(left))  # more colluders, less noise
    assert left[-1] == pytest.approx(sigma / math.sqrt(hospitals - 1))


def test_the_federation_batch_and_steps() -> None:
    assert dp_distributed.federation_batch(2455, 4) == 512
    assert dp_distributed.federation_batch(1000, 4) == 250  # a quarter of the records
    assert dp_distributed.plan(2455, 4).steps_per_epoch == 5
    assert dp_distributed.plan(9600, 4).steps_per_epoch == 19
    assert dp_distributed.plan(2455, 4, batch=100).steps_per_epoch == 25
    with pytest.raises(ValueError, match="two hospitals"):
        dp_distributed.plan(100, 1)


@pytest.mark.parametrize(("changes", "message"), [
    ({"strategy": "fedmtl"}, "--dp-noise distributed works with --strategy fedper, "
                             "horizontal, split, vertical, not fedmtl"),
    ({"strategy": "fedper", "central_dp": True, "central_noise_multiplier": 1.0},
     "--central-dp does not work"),
    ({"strategy": "fedper", "max_update_norm": 5.0}, "--max-update-norm does not work"),
    ({"central_dp": True, "central_noise_multiplier": 1.0}, "--central-dp does not work"),
    ({"min_hospitals": 3}, "--min-hospitals does not work"),
    ({"max_update_norm": 5.0}, "--max-update-norm does not work"),
    ({"prox_mu": 0.1}, "--prox-mu does not work"),
    ({"server_opt": "fedadam"}, "--server-opt does not work"),
    ({"dp_epsilon": None}, "--dp-noise needs --dp-epsilon"),
    ({"dp_noise": "central"}, "--dp-noise must be one of local, distributed"),
])
def test_options_that_cannot_hold_are_refused(fed, changes, message) -> None:
    with pytest.raises(UserError, match=message):
        strategies.validate(TrainConfig(fed=str(fed), **{**CONFIG, **changes}))


@pytest.mark.slow  # two runs with real parties (≈ 1 min)
def test_a_crashed_and_resumed_run_accounts_every_step_once(fed, tmp_path, monkeypatch) -> None:
    config = TrainConfig(fed=str(fed), **CONFIG)
    summary = crash_after_round_1_and_resume(config, tmp_path / "run", monkeypatch)
    n = _records_total(fed)
    steps = ROUNDS * math.ceil(n / dp_distributed.federation_batch(n, HOSPITALS))
    for report in summary.privacy["hospitals"].values():
        assert report["steps"] == steps
        assert EPSILON * 0.95 <= report["epsilon"] <= EPSILON * (1 + 1e-9)
