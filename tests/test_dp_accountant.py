"""DP-SGD's accountant choice and calibration (fedtrain/local_training/dp_accountant.py), checked
against fresh Opacus accountants."""

from __future__ import annotations

import pytest
from crypten_fl.fedtrain.local_training import dp_accountant
from crypten_fl.fedtrain.local_training.dp_accountant import (
    PRV_MAX_EPSILON,
    accountant_for,
    epsilon,
    noise_multiplier,
    smallest_multiplier,
)
from crypten_fl.fedtrain.local_training.dp_sgd import DPConfig
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant


def _opacus(accountant: type, sigma: float, rate: float, steps: int, delta: float) -> float:
    fresh = accountant()
    fresh.history = [(sigma, rate, steps)]
    return float(fresh.get_epsilon(delta))


# sample rates of real hospitals (1/steps per epoch, ≤ 1/4 by the recipe); Opacus' RDP is slow
# at larger ones (0.2 s per evaluation at q = 0.5), which only makes the test slow
@settings(max_examples=4, deadline=None)
@given(target=st.floats(0.3, PRV_MAX_EPSILON), rate=st.floats(0.01, 0.25),
       steps=st.integers(5, 400), delta=st.floats(1e-6, 1e-3))
def test_the_calibrated_noise_spends_the_budget_to_within_001_never_more(
        target, rate, steps, delta) -> None:
    sigma = noise_multiplier(target, delta, rate, steps, "prv")
    assert target - 0.01 <= _opacus(PRVAccountant, sigma, rate, steps, delta) <= target
    # PRV needs no more noise than RDP for the same budget
    rdp_sigma = noise_multiplier(target, delta, rate, steps, "rdp")
    assert sigma <= rdp_sigma
    assert target - 0.01 <= _opacus(RDPAccountant, rdp_sigma, rate, steps, delta) <= target


def test_large_budgets_are_accounted_with_rdp_cheaply() -> None:
    """PRV at ε = 10,000 was killed for lack of memory (24 GB); above the cap RDP is used, for
    the calibration and for the ε reported."""
    assert accountant_for(3.0) == accountant_for(PRV_MAX_EPSILON) == "prv"
    assert accountant_for(PRV_MAX_EPSILON + 0.5) == "rdp"
    assert DPConfig(3.0, 4).accountant == "prv"
    assert DPConfig(10_000.0, 4).accountant == "rdp"
    assert DPConfig(10_000.0, 4, accountant="prv").accountant == "prv"  # an explicit choice
    rate, steps, delta = 0.05, 800, 1e-5
    sigma = noise_multiplier(10_000.0, delta, rate, steps, "rdp")
    spent = epsilon(sigma, rate, steps, delta, "rdp")
    assert spent == _opacus(RDPAccountant, sigma, rate, steps, delta)
    assert 10_000.0 - 0.01 <= spent <= 10_000.0


def test_reported_epsilon_is_prv_below_the_cap_and_rdp_far_above(monkeypatch) -> None:
    rate, steps, delta = 0.05, 200, 1e-5
    below = noise_multiplier(3.0, delta, rate, steps, "prv")
    assert epsilon(below, rate, steps, delta, "prv") == _opacus(PRVAccountant, below, rate,
                                                                 steps, delta)
    # σ so small that RDP's ε is far above twice the cap (e.g. colluding hospitals' view):
    # PRV is never evaluated there
    tiny = 0.3
    assert _opacus(RDPAccountant, tiny, rate, steps, delta) > 2 * PRV_MAX_EPSILON

    def refuse(name: str, *args: float) -> float:
        assert name != "prv", "PRV evaluated above the cap"
        return _opacus(RDPAccountant, *args)

    monkeypatch.setattr(dp_accountant, "sgm_epsilon", refuse)
    assert epsilon(tiny, rate, steps, delta, "prv") == _opacus(RDPAccountant, tiny, rate, steps,
                                                              delta)
    assert epsilon(tiny, rate, 0, delta, "prv") == 0.0


@given(exact=st.floats(1e-3, 1e5), power=st.floats(0.5, 3.0), target=st.floats(0.05, 1e3),
       hint=st.none() | st.floats(1e-3, 1e4))
def test_the_search_finds_the_smallest_multiplier_of_any_decreasing_epsilon(
        exact: float, power: float, target: float, hint: float | None) -> None:
    """spent(σ) = target·(exact/σ)^power, whose answer is ``exact``: the search spends at most
    the target and within its tolerance, from any starting hint above or below."""
    scale = target * exact ** power
    calls: list[float] = []

    def spent(sigma: float) -> float:
        calls.append(sigma)
        return scale / sigma ** power

    sigma = smallest_multiplier(spent, target, high=hint)
    assert target - dp_accountant.EPSILON_TOLERANCE <= spent(sigma) <= target
    assert sigma >= exact * (1 - 1e-9)
    assert len(calls) < 120


def test_a_budget_no_noise_can_meet_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be reached"):
        smallest_multiplier(lambda sigma: 5.0, 1.0)


@pytest.mark.parametrize("target, delta", [(0.1, 1e-5), (0.05, 1e-6)])
def test_budgets_below_what_rdp_can_certify_are_calibrated_with_prv(target, delta) -> None:
    """Opacus' RDP orders end at 63: no σ gets RDP's ε below ≈ (log(1/δ) − log 63)/62 (0.12 at
    δ = 10⁻⁵), so RDP cannot bracket the search there; PRV alone finds σ, within 1 % of the
    target."""
    rate, steps = 0.2, 200
    with pytest.raises(ValueError, match="cannot be reached"):
        noise_multiplier(target, delta, rate, steps, "rdp")
    sigma = noise_multiplier(target, delta, rate, steps, "prv")
    assert 0.99 * target <= _opacus(PRVAccountant, sigma, rate, steps, delta) <= target
