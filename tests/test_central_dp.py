"""Hospital-level DP on the aggregate (issue 7): clipping, distributed noise, accounting, the
privacy.json record, the options, and one end-to-end run checked statistically."""

from __future__ import annotations

import json
import math

import pytest
import torch
from crypten_fl.cli.app import app
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.faults import CORRUPT_UPDATE
from crypten_fl.fedtrain.run.coordinator import partial_dir, train
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.tensors import flatten
from crypten_fl.fedtrain.updates.central_dp import (
    DEFAULT_DELTA,
    DistributedGaussian,
    calibrate,
    clip_to_norm,
    colluding_multiplier,
    epsilon,
    mean_update,
    privacy_record,
    private_noise_source,
    resolve_noise_multiplier,
    seeded_noise_source,
)
from helpers.update_sharing import ONE_ROUND, federation_with_local_models
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from scipy.optimize import brentq
from scipy.stats import norm
from typer.testing import CliRunner

vectors = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=50).map(
    lambda xs: torch.tensor(xs, dtype=torch.float64))
clips = st.floats(1e-3, 1e3)


@settings(max_examples=200, deadline=None)
@given(vectors, clips)
def test_clipping_bounds_the_norm_and_is_the_identity_inside_the_ball(x, clip) -> None:
    clipped = clip_to_norm(x, clip)
    norm_x = float(torch.linalg.vector_norm(x))
    assert float(torch.linalg.vector_norm(clipped)) <= clip
    if norm_x <= clip:
        assert torch.equal(clipped, x)
    else:  # same direction, on the sphere of radius C
        assert torch.allclose(clipped * norm_x, x * clip, rtol=1e-9, atol=1e-9 * clip * norm_x)
        assert float(torch.linalg.vector_norm(clipped)) == pytest.approx(clip, rel=1e-9)


def _mechanism(seed: int, z: float = 1.3, clip: float = 0.7, shares: int = 4
               ) -> DistributedGaussian:
    return DistributedGaussian(clip, z, shares,
                               seeded_noise_source(torch.Generator().manual_seed(seed)))


def test_a_contribution_is_the_clipped_update_plus_the_noise_share_and_a_count() -> None:
    update = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # norm 5 > C = 0.7
    got = _mechanism(seed=1).contribution(update, accepted=True)
    noise = torch.randn(3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    share_std = 1.3 * 0.7 / 2  # z·C/√m, m = 4
    expected = torch.tensor([0.42, 0.56, 0.0], dtype=torch.float64) + noise * share_std
    assert torch.allclose(got[:-1], expected, rtol=0, atol=1e-12) and got[-1] == 1.0
    rejected = _mechanism(seed=1).contribution(torch.tensor([math.nan, 1.0, 2.0]), False)
    assert torch.allclose(rejected[:-1], noise * share_std, rtol=0, atol=1e-15)  # noise only
    assert rejected[-1] == 1.0


def test_the_sum_of_the_shares_carries_the_full_noise_and_the_mean_divides_by_takers() -> None:
    n, z, clip = 200_000, 1.3, 0.7
    zero = torch.zeros(n, dtype=torch.float64)
    contributions = [_mechanism(seed).contribution(zero, accepted=True) for seed in range(4)]
    assert all(float(c[:-1].std()) == pytest.approx(z * clip / 2, rel=0.01)
               for c in contributions)
    total = torch.stack(contributions).sum(dim=0)
    assert total[-1] == 4.0
    assert float(total[:-1].std()) == pytest.approx(z * clip, rel=0.01)  # estimate sd: 0.16 %
    assert abs(float(total[:-1].mean())) < 6 * z * clip / math.sqrt(n)
    assert torch.equal(mean_update(total), total[:-1] / 4)
    # with min-hospitals m = 3 of 4, any 3 shares already carry the full noise
    three = torch.stack([_mechanism(s, shares=3).contribution(zero, True) for s in range(3)])
    assert float(three.sum(dim=0)[:-1].std()) == pytest.approx(z * clip, rel=0.01)


def test_each_hospital_draws_its_noise_privately_not_from_the_run_seed() -> None:
    a, b = private_noise_source()(64), private_noise_source()(64)
    seeded = torch.randn(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert not torch.equal(a, b) and not torch.equal(a, seeded)


def _exact_gaussian_delta(eps: float, sigma: float) -> float:
    """δ(ε) of the Gaussian mechanism with sensitivity 1 and std σ (Balle & Wang, ICML 2018)."""
    return (math.exp(norm.logcdf(1 / (2 * sigma) - eps * sigma))
            - math.exp(eps + norm.logcdf(-1 / (2 * sigma) - eps * sigma)))


@pytest.mark.parametrize("z, rounds", [(1.0, 20), (0.5, 20), (6.68, 20), (3.0, 100)])
def test_the_rdp_epsilon_is_a_valid_and_tight_bound_for_rounds_of_the_gaussian_mechanism(
        z, rounds) -> None:
    # T Gaussian mechanisms of multiplier z compose exactly to one of multiplier z/√T
    sigma, eps = z / math.sqrt(rounds), epsilon(z, rounds, 1e-5)
    assert _exact_gaussian_delta(eps, sigma) <= 1e-5
    exact = brentq(lambda e: _exact_gaussian_delta(e, sigma) - 1e-5, 1e-6, 500)
    assert exact < eps < 1.15 * exact
    assert epsilon(1.0, 20, 1e-5) == pytest.approx(30.1266, abs=1e-3)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.3, 20), st.integers(1, 200))
def test_epsilon_falls_with_the_noise_and_grows_with_the_rounds(z, rounds) -> None:
    eps = epsilon(z, rounds, 1e-5)
    assert epsilon(z * 1.1, rounds, 1e-5) < eps < epsilon(z, rounds + 1, 1e-5)


@pytest.mark.parametrize("target, rounds", [(1.0, 20), (3.0, 20), (8.0, 5)])
def test_calibration_reaches_the_target_epsilon(target, rounds) -> None:
    z = calibrate(target, rounds, 1e-5)
    assert target - 0.01 <= epsilon(z, rounds, 1e-5) <= target


def test_colluding_hospitals_remove_their_noise_shares() -> None:
    assert colluding_multiplier(2.0, 4, 0) == 2.0
    assert colluding_multiplier(2.0, 4, 3) == pytest.approx(1.0)  # z·√(1/4)
    assert colluding_multiplier(2.0, 4, 2) == pytest.approx(2.0 * math.sqrt(0.5))
    with pytest.raises(ValueError):
        colluding_multiplier(2.0, 4, 4)


def test_the_privacy_record_accounts_every_collusion_level() -> None:
    config = TrainConfig(fed="unused", central_dp=True, central_clip=0.5,
                         central_noise_multiplier=1.0, rounds=20)
    record = privacy_record(config, 4, {"0": 2.5})
    by = record["epsilon_by_colluding_hospitals"]
    assert list(by) == ["0", "1", "2", "3"]
    for c in range(4):
        assert by[str(c)] == epsilon(math.sqrt((4 - c) / 4), 20, DEFAULT_DELTA)
    assert record["epsilon"] == by["0"] == pytest.approx(30.1266, abs=1e-3)
    assert (record["epsilon_against_one_hospital"], record["epsilon_two_honest_hospitals"],
            record["epsilon_all_others_collude"]) == (by["1"], by["2"], by["3"])
    assert by["0"] < by["1"] < by["2"] < by["3"]
    assert (record["noise_std_per_hospital"], record["noise_std_of_sum"]) == (0.25, 0.5)
    assert (record["delta"], record["rounds"], record["sample_rate"], record["noise_shares"]
            ) == (DEFAULT_DELTA, 20, 1.0, 4)
    assert record["record_level_dp_sgd_epsilon"] == {"0": 2.5}
    assert record["secure_rng"] is True
    tolerant = privacy_record(TrainConfig(fed="unused", central_dp=True, min_hospitals=3,
                                          central_noise_multiplier=1.0), 4)
    assert tolerant["noise_shares"] == 3 and list(tolerant["epsilon_by_colluding_hospitals"]) == [
        "0", "1", "2"]
    calibrated = TrainConfig(fed="unused", central_dp=True, central_epsilon=3.0,
                             central_delta=1e-6, rounds=10)
    assert resolve_noise_multiplier(calibrated) == calibrate(3.0, 10, 1e-6)
    assert privacy_record(calibrated, 4)["epsilon"] <= 3.0


@pytest.mark.parametrize("name", ["horizontal", "fedper", "fedmtl", "local"])
def test_with_central_dp_the_weighted_means_become_the_noisy_sum(name) -> None:
    cls = strategies.get(name)
    plain = TrainConfig(fed="unused", strategy=name)
    assert cls.receives_with(plain) == cls.receives
    noisy = cls.receives_with(TrainConfig(fed="unused", strategy=name, central_dp=True,
                                          central_noise_multiplier=1.0))
    assert tags.WEIGHTED_MODEL_SUM not in noisy and tags.MEAN_OF_HEADS not in noisy
    assert (tags.NOISY_MODEL_SUM in noisy) == (name != "local")


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return federation_with_local_models(tmp_path_factory)


runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["--central-dp"], "--central-dp needs exactly one of --noise-multiplier and "
                       "--central-epsilon"),
    (["--central-dp", "--noise-multiplier", "1", "--central-epsilon", "3"], "exactly one"),
    (["--noise-multiplier", "1"], "--noise-multiplier, --central-epsilon and --central-delta "
                                  "need --central-dp"),
    (["--central-dp", "--noise-multiplier", "1", "--strategy", "split"],
     "--central-dp works with --strategy fedmtl, fedper, horizontal, not split"),
    (["--central-dp", "--noise-multiplier", "1", "--clip", "0"], "--clip must be a positive"),
    (["--central-dp", "--noise-multiplier", "-1"], "--noise-multiplier must be a positive"),
    (["--central-dp", "--noise-multiplier", "1", "--central-delta", "0.4"],
     "--central-delta must be below 1/3"),
    (["--central-dp", "--central-epsilon", "1e-9", "--rounds", "50"],
     "--central-epsilon 1e-09: cannot be reached in 50 rounds"),
    (["--max-update-norm", "0"], "--max-update-norm must be > 0"),
    (["--max-update-norm", "1", "--strategy", "local"], "--max-update-norm works with"),
])
def test_bad_central_dp_options_fail_before_any_process_starts(local, tmp_path, args, message
                                                                ) -> None:
    out = tmp_path / "r"
    result = runner.invoke(app, ["train", "--fed", str(local.fed), "--out", str(out), *args])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert not out.exists() and not partial_dir(out).exists()


def test_a_central_dp_run_moves_the_model_by_the_clipped_mean_plus_noise_of_scale_z_c(
        local, tmp_path, monkeypatch) -> None:
    norms = [float(local.update(k).norm()) for k in range(3)]
    assert norms[1] < norms[2]
    clip = (norms[1] + norms[2]) / 2  # hospital 2's update is clipped, hospital 1's is not
    # noise half the size of what the clipping takes off hospital 2's update, so that both
    # can be checked whatever the model
    z = float((local.update(2) - clip_to_norm(local.update(2), clip)).std()) / (2 * clip)
    monkeypatch.setenv(CORRUPT_UPDATE, "0:1:1000")  # hospital 0's update is rejected (norm bound)
    summary = train(TrainConfig(fed=str(local.fed), central_dp=True, central_clip=clip,
                                central_noise_multiplier=z, max_update_norm=1.0, **ONE_ROUND),
                    tmp_path / "run")
    model = load_file(str(summary.run_dir / "model.safetensors"))
    moved = 3 * (flatten(model) - flatten(local.initial))  # 3 hospitals took part
    noise = moved - local.update(1) - clip_to_norm(local.update(2), clip)  # hospital 0: zeros
    assert float(noise.std()) == pytest.approx(z * clip, rel=0.08)  # estimate sd ≈ 1.2 %
    assert abs(float(noise.mean())) < 6 * z * clip / math.sqrt(noise.numel())
    unclipped = moved - local.update(1) - local.update(2)
    assert float(unclipped.std()) > 1.3 * z * clip  # the clipping really happened
    record = summary.privacy["central_dp"]
    assert record["epsilon"] == epsilon(z, 1, DEFAULT_DELTA)
    assert (record["clip"], record["noise_multiplier"], record["hospitals"]) == (clip, z, 3)
    assert record["secure_rng"] is True
    assert json.loads((summary.run_dir / "validation.json").read_text())[
        "rejected_per_hospital"] == {"0": 1, "1": 0, "2": 0}
