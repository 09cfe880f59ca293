"""Server optimizers (FedAvg, FedAvgM, FedAdagrad, FedAdam, FedYogi) on hand-computed steps, and
the properties that let them compose with secure aggregation: FedAvg at η = 1 is the mean itself,
and a restored state continues bit-for-bit."""

from __future__ import annotations

import math

import pytest
import torch
from crypten_fl.fedtrain.config import SERVER_OPTIMIZERS, ServerOptSettings
from crypten_fl.fedtrain.updates.server_optimizers import ServerOptimizer
from hypothesis import given, settings
from hypothesis import strategies as st


def _opt(name: str, **kw: float) -> ServerOptimizer:
    return ServerOptimizer(ServerOptSettings(name, **kw))


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_fedadam_first_step_by_hand() -> None:
    # Δ = (1, −2); m = 0.1·Δ; v = 0.01·Δ²; x = 0.01 · m / (√v + 0.001)
    new = _opt("fedadam").step(_t(0, 0), _t(1, -2))
    assert torch.allclose(new, _t(0.01 * 0.1 / 0.101, -0.01 * 0.2 / 0.201), rtol=0, atol=1e-15)


def test_fedyogi_differs_from_fedadam_only_from_the_second_step() -> None:
    adam, yogi = _opt("fedadam"), _opt("fedyogi")
    x = _t(0.5, -1.0)
    a1, y1 = adam.step(x, _t(1.5, -3.0)), yogi.step(x, _t(1.5, -3.0))
    assert torch.equal(a1, y1)  # from v = 0 both give v = (1 − β₂)·Δ²
    # second step, Δ = (0.1, 0.1): Adam v = 0.99·v + 0.01·Δ²; Yogi v = v − 0.01·Δ²·sign(v − Δ²)
    a2, y2 = adam.step(a1, a1 + 0.1), yogi.step(y1, y1 + 0.1)
    v1 = 0.01 * torch.tensor([1.0, 4.0], dtype=torch.float64)
    assert torch.allclose(adam.v, 0.99 * v1 + 0.01 * 0.01, rtol=0, atol=1e-15)
    assert torch.allclose(yogi.v, v1 - 0.01 * 0.01, rtol=0, atol=1e-15)  # v > Δ²: v shrinks
    assert not torch.equal(a2, y2)


def test_fedadagrad_accumulates_squares() -> None:
    opt = _opt("fedadagrad", lr=0.5)
    x1 = opt.step(_t(0.0), _t(2.0))  # m = Δ (β₁ = 0), v = 4: x = 0.5·2/(2 + 0.001)
    assert math.isclose(float(x1), 0.5 * 2 / 2.001, rel_tol=0, abs_tol=1e-15)
    opt.step(x1, x1 + 1.0)
    assert torch.allclose(opt.v, _t(5.0), rtol=0, atol=1e-15)


def test_fedavgm_keeps_momentum() -> None:
    opt = _opt("fedavgm", lr=1.0, beta1=0.5)
    x1 = opt.step(_t(0.0), _t(1.0))  # m = 1 → x = 1
    x2 = opt.step(x1, x1 + 2.0)      # m = 0.5 + 2 = 2.5 → x = 3.5
    assert float(x1) == 1.0 and float(x2) == 3.5


def test_fedavg_with_a_server_learning_rate_interpolates() -> None:
    assert torch.equal(_opt("fedavg", lr=0.5).step(_t(2.0, 0.0), _t(4.0, -2.0)), _t(3.0, -1.0))


finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=8))
def test_fedavg_at_rate_one_adopts_the_mean_exactly(pairs: list[tuple[float, float]]) -> None:
    x, mean = _t(*[a for a, _ in pairs]), _t(*[b for _, b in pairs])
    assert torch.equal(_opt("fedavg").step(x, mean), mean)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(SERVER_OPTIMIZERS),
       st.lists(st.lists(finite, min_size=3, max_size=3), min_size=2, max_size=5))
def test_a_restored_state_continues_bit_for_bit(name: str, means: list[list[float]]) -> None:
    straight, x = _opt(name), _t(0.0, 0.0, 0.0)
    xs = []
    for m in means:
        x = straight.step(x, _t(*m))
        xs.append(x)
    # the same run, interrupted after the first step and continued by a fresh optimizer
    first = _opt(name)
    x = first.step(_t(0.0, 0.0, 0.0), _t(*means[0]))
    resumed = _opt(name)
    resumed.load_state({k: v.clone() for k, v in first.state().items()})
    for m in means[1:]:
        x = resumed.step(x, _t(*m))
    assert torch.equal(x, xs[-1]) and resumed.steps == straight.steps == len(means)


@pytest.mark.parametrize(("kw", "message"), [
    ({"name": "sgd"}, "--server-opt must be one of"),
    ({"name": "fedadam", "lr": 0.0}, "--server-lr"),
    ({"name": "fedadam", "lr": math.inf}, "--server-lr"),
    ({"name": "fedavgm", "beta1": 1.0}, "--server-momentum"),
    ({"name": "fedyogi", "beta2": -0.1}, "--server-beta2"),
    ({"name": "fedadam", "tau": 0.0}, "--server-tau must be > 0 for fedadam"),
    ({"name": "fedadagrad", "tau": math.nan}, "--server-tau"),
])
def test_invalid_settings_name_the_option(kw: dict, message: str) -> None:
    problems = ServerOptSettings(**kw).problems()
    assert problems and message in problems[0]


def test_defaults_are_valid() -> None:
    assert all(not ServerOptSettings(name).problems() for name in SERVER_OPTIMIZERS)


def test_a_config_written_before_server_optimizers_keeps_its_encrypted_learning_rate() -> None:
    from crypten_fl.fedtrain.config import TrainConfig

    old = TrainConfig.from_json({"fed": "f", "strategy": "split", "server_lr": 0.2})
    assert (old.encrypted_lr, old.server_lr) == (0.2, None)
    new = TrainConfig.from_json({"fed": "f", "encrypted_lr": 0.05, "server_lr": 0.5})
    assert (new.encrypted_lr, new.server_lr) == (0.05, 0.5)
