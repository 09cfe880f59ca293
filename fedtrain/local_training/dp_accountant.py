"""Which accountant DP-SGD uses, and the σ ↔ ε computations of the subsampled Gaussian.

DP-SGD's default is Opacus' PRV accountant (Gopi, Lee & Wutschitz, NeurIPS 2021): it composes
the privacy-loss distribution numerically and returns an upper bound on ε within 0.01 of the
exact value, 7–10 % less noise than RDP at the budgets people use. Its grid grows with ε: one
evaluation near ε = 90 takes 0.7 GB and 2.4 s, and Opacus' calibration, which bisects σ from
[0, 10] and so evaluates far smaller σ than the answer, took 44 s and 2.5 GB at ε = 100 and was
killed for lack of memory (24 GB) at ε = 10,000 on this project's machine. So:

* above :data:`PRV_MAX_EPSILON` the RDP accountant is used (an upper bound too, and at such ε
  the difference is of no consequence);
* :func:`noise_multiplier` brackets the PRV search with RDP's σ, which is never below PRV's
  (RDP's ε is an upper bound of the same quantity), so PRV is only evaluated near the answer
  (3–4 evaluations by false position);
* :func:`smallest_multiplier` is the project's one σ search (DP-SGD, split/vertical's exchange
  mechanisms, ``--central-dp``);
* :func:`epsilon` reports an RDP bound instead of PRV's where RDP's own ε is above twice the cap
  (e.g. ε against colluding hospitals, which see less noise than the target was set for).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

#: DP-SGD's accountant up to :data:`PRV_MAX_EPSILON`
ACCOUNTANT = "prv"
#: the accountant above it
FALLBACK = "rdp"
#: largest ε for which the PRV accountant is used (its cost grows with ε)
PRV_MAX_EPSILON = 20.0
#: lower end of the PRV bracket, as a fraction of RDP's σ (widened if PRV needs less)
PRV_BRACKET = 0.85
#: evaluations of the search after the bracket (false position needs 1–3)
MAX_SEARCH_STEPS = 60
#: the search gives up above this σ (the budget is out of reach) and stops below this one
MAX_MULTIPLIER, MIN_MULTIPLIER = 1e6, 1e-6
#: the calibrated σ spends at most the target and at least the target minus this (or minus 1 %
#: of the target, if that is less)
EPSILON_TOLERANCE = 0.01


def accountant_for(target_epsilon: float) -> str:
    """The accountant of a DP-SGD run with budget ``target_epsilon``."""
    return ACCOUNTANT if target_epsilon <= PRV_MAX_EPSILON else FALLBACK


def sgm_epsilon(accountant_name: str, sigma: float, sample_rate: float, steps: int,
                delta: float, alphas: list[float] | None = None) -> float:
    """ε of ``steps`` sampled Gaussian mechanisms by a fresh Opacus accountant (RDP: at the
    orders ``alphas`` if given). Remembered: every hospital of a federation with the same
    number of stays asks the same question, and each evaluation takes 0.1–2 s."""
    return _sgm_epsilon(accountant_name, sigma, sample_rate, steps, delta,
                        None if alphas is None else tuple(alphas))


@functools.lru_cache(maxsize=4096)
def _sgm_epsilon(accountant_name: str, sigma: float, sample_rate: float, steps: int,
                 delta: float, alphas: tuple[float, ...] | None) -> float:
    from opacus.accountants import create_accountant

    accountant = create_accountant(accountant_name)
    accountant.history = [(sigma, sample_rate, steps)]
    extra = {} if alphas is None else {"alphas": list(alphas)}
    with warnings.catch_warnings():  # an optimum at the edge of the orders: valid, only loose
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(accountant.get_epsilon(delta, **extra))


def epsilon(sigma: float, sample_rate: float, steps: int, delta: float,
            accountant_name: str) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian mechanisms of multiplier ``sigma`` by
    ``accountant_name``; with PRV, RDP's bound where RDP's ε exceeds twice :data:`PRV_MAX_EPSILON`
    (a run calibrated to at most that cap by PRV stays below it by RDP)."""
    if steps == 0:
        return 0.0
    if accountant_name != ACCOUNTANT:
        return sgm_epsilon(accountant_name, sigma, sample_rate, steps, delta)
    rdp = sgm_epsilon(FALLBACK, sigma, sample_rate, steps, delta)
    return rdp if rdp > 2 * PRV_MAX_EPSILON else sgm_epsilon(ACCOUNTANT, sigma, sample_rate,
                                                          steps, delta)


@functools.lru_cache(maxsize=256)
def noise_multiplier(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                     accountant_name: str) -> float:
    """The σ whose ``steps`` mechanisms spend ε in [target − 0.01, target] by the accountant."""
    try:
        high: float | None = smallest_multiplier(
            lambda sigma: sgm_epsilon(FALLBACK, sigma, sample_rate, steps, delta),
            target_epsilon)
    except ValueError:
        # Opacus' RDP orders end at 63, so RDP cannot certify ε below ≈ (log(1/δ) − log 63)/62
        # (0.045 at δ = 10⁻³, 0.12 at 10⁻⁵) whatever the noise; PRV can: search it unbracketed
        if accountant_name == FALLBACK:
            raise
        high = None
    if accountant_name == FALLBACK:
        assert high is not None
        return high
    return smallest_multiplier(
        lambda sigma: sgm_epsilon(accountant_name, sigma, sample_rate, steps, delta),
        target_epsilon, high=high, low_fraction=0.5 if high is None else PRV_BRACKET)


def smallest_multiplier(spent: Callable[[float], float], target_epsilon: float, *,
                        high: float | None = None, low_fraction: float = 0.5) -> float:
    """The noise multiplier σ with ``spent(σ)`` in [target − tolerance, target], for an ε that
    decreases with σ: every calibration of the project (DP-SGD, split/vertical's exchange
    mechanisms, ``--central-dp``) finds its σ here.

    ``high`` is a σ expected to spend at most the target (e.g. RDP's, for PRV); without it, the
    bracket is found by doubling from 1. The lower end starts at ``low_fraction`` × ``high`` and
    shrinks until it overspends. Then false position on log ε against log σ (Illinois variant:
    the end kept twice in a row has its weight halved) until the upper end is within
    :data:`EPSILON_TOLERANCE`; it never returns a σ that spends more than the target."""
    high = 1.0 if high is None else high
    spent_high = spent(high)
    low: float | None = None
    spent_low = math.inf
    while spent_high > target_epsilon:  # bracket from above: double until within budget
        if high > MAX_MULTIPLIER:
            raise ValueError(f"ε = {target_epsilon} cannot be reached with any noise multiplier")
        low, spent_low = high, spent_high
        high *= 2
        spent_high = spent(high)
    if low is None:  # bracket from below: shrink until the budget is exceeded
        low = high * low_fraction
        spent_low = spent(low)
        while spent_low <= target_epsilon:
            if low < MIN_MULTIPLIER:  # (almost) no noise is needed
                return low
            high, spent_high = low, spent_low
            low *= low_fraction
            spent_low = spent(low)
    gap_low, gap_high = math.log(spent_low / target_epsilon), math.log(spent_high / target_epsilon)
    kept = ""
    tolerance = min(EPSILON_TOLERANCE, target_epsilon / 100)  # small budgets: within 1 %
    for _ in range(MAX_SEARCH_STEPS):
        if target_epsilon - spent_high <= tolerance:
            break
        t = gap_low / (gap_low - gap_high)
        t = t if 0 < t < 1 else 0.5  # an infinite ε at the lower end: bisect
        middle = math.exp(math.log(low) + t * (math.log(high) - math.log(low)))
        spent_middle = spent(middle)
        gap = math.log(spent_middle / target_epsilon)
        if spent_middle <= target_epsilon:
            high, spent_high, gap_high = middle, spent_middle, gap
            gap_low = gap_low / 2 if kept == "low" else gap_low
            kept = "low"
        else:
            low, gap_low = middle, gap
            gap_high = gap_high / 2 if kept == "high" else gap_high
            kept = "high"
    return high  # spends at most the target (within tolerance unless the search ran out)
