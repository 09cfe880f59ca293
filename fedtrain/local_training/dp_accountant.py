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
* :func:`epsilon` reports an RDP bound instead of PRV's where RDP's own ε is above twice the cap
  (e.g. ε against colluding hospitals, which see less noise than the target was set for).
"""

from __future__ import annotations

import math
import warnings

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
#: the calibrated σ spends at most the target and at least the target minus this
EPSILON_TOLERANCE = 0.01


def accountant_for(target_epsilon: float) -> str:
    """The accountant of a DP-SGD run with budget ``target_epsilon``."""
    return ACCOUNTANT if target_epsilon <= PRV_MAX_EPSILON else FALLBACK


def _sgm_epsilon(accountant_name: str, sigma: float, sample_rate: float, steps: int,
                 delta: float) -> float:
    from opacus.accountants import create_accountant

    accountant = create_accountant(accountant_name)
    accountant.history = [(sigma, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(accountant.get_epsilon(delta))


def epsilon(sigma: float, sample_rate: float, steps: int, delta: float,
            accountant_name: str) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian mechanisms of multiplier ``sigma`` by
    ``accountant_name``; with PRV, RDP's bound where RDP's ε exceeds twice :data:`PRV_MAX_EPSILON`
    (a run calibrated to at most that cap by PRV stays below it by RDP)."""
    if steps == 0:
        return 0.0
    if accountant_name != ACCOUNTANT:
        return _sgm_epsilon(accountant_name, sigma, sample_rate, steps, delta)
    rdp = _sgm_epsilon(FALLBACK, sigma, sample_rate, steps, delta)
    return rdp if rdp > 2 * PRV_MAX_EPSILON else _sgm_epsilon(ACCOUNTANT, sigma, sample_rate,
                                                          steps, delta)


def noise_multiplier(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                     accountant_name: str) -> float:
    """The σ whose ``steps`` mechanisms spend ε in [target − 0.01, target] by the accountant."""
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        high = float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=steps,
                                          accountant=FALLBACK,
                                          epsilon_tolerance=EPSILON_TOLERANCE))
    if accountant_name == FALLBACK:
        return high

    def spent(sigma: float) -> float:
        return _sgm_epsilon(accountant_name, sigma, sample_rate, steps, delta)

    # PRV's σ is 7-10 % below RDP's at the budgets measured; widen the bracket if not
    spent_high = spent(high)
    while spent_high > target_epsilon:  # not expected: RDP's σ is an upper bound
        high *= 1.25
        spent_high = spent(high)
    low = high * PRV_BRACKET
    spent_low = spent(low)
    while spent_low <= target_epsilon:
        high, spent_high = low, spent_low
        low *= PRV_BRACKET
        spent_low = spent(low)
    # false position on log ε − log target against log σ, Illinois variant (the end that
    # stays twice in a row has its weight halved), until the upper end is within tolerance
    gap_low, gap_high = math.log(spent_low / target_epsilon), math.log(spent_high / target_epsilon)
    kept = ""
    for _ in range(MAX_SEARCH_STEPS):
        if target_epsilon - spent_high <= EPSILON_TOLERANCE:
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
