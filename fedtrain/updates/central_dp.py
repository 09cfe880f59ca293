"""Hospital-level DP on the aggregate: DP-FedAvg with distributed Gaussian noise.

Each round every hospital k takes its model update Δ_k (its shared parameters after local
training minus the global model at the start of the round), clips it to L2 norm C, adds its own
share of Gaussian noise N(0, z²C²/m · I) drawn from its own CSPRNG (AES-256-CTR keyed from the
OS, fedtrain/secure_noise.py) that nobody else knows, and
secret-shares the result with a 1 (to count who took part). The revealed sum therefore carries
noise N(0, z²C² · n/m · I) with n ≥ m hospitals taking part (m = the number of hospitals, or
``--min-hospitals`` when the run tolerates dropouts), and no party ever sees the un-noised sum.
The global model moves by the noisy sum divided by n: an unweighted mean, so every hospital has
the same influence bound C (data-size weights would make the sensitivity depend on the weights).

Guarantee: the sequence of revealed sums — hence every global model — is (ε, δ)-DP under the
hospital-level zero-out neighbouring relation (one hospital's entire contribution replaced by
zeros, which is what a rejected update contributes), whose L2 sensitivity is C. Accounting: the
Gaussian mechanism at sample rate 1 (every hospital takes part in every round, no subsampling),
composed over the rounds with Opacus' RDP accountant. c colluding hospitals can subtract their own
noise shares, leaving the multiplier z·√((m − c)/m) (:func:`colluding_multiplier`).

References: McMahan, Ramage, Talwar & Zhang, "Learning differentially private recurrent language
models", ICLR 2018 (DP-FedAvg: per-client clipping, Gaussian noise on the sum of updates);
Truex et al., "A hybrid approach to privacy-preserving federated learning", AISec 2019, and
Kairouz, Liu & Steinke, "The distributed discrete Gaussian mechanism for federated learning with
secure aggregation", ICML 2021 (each client adds a share of the noise before secure aggregation).

>>> clip_to_norm(torch.tensor([3.0, 4.0], dtype=torch.float64), 1.0)
tensor([0.6000, 0.8000], dtype=torch.float64)
>>> round(epsilon(noise_multiplier=1.0, rounds=20, delta=1e-5), 2)
30.13
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.local_training.dp_accountant import sgm_epsilon, smallest_multiplier
from crypten_fl.fedtrain.secure_noise import SecureRandom

if TYPE_CHECKING:
    from crypten_fl.fedtrain.config import TrainConfig

#: hospital-level δ when --central-delta is not given: far below 1/K for any realistic number K
#: of hospitals (with K = 4, 1/K = 0.25 would allow publishing one whole hospital's data)
DEFAULT_DELTA = 1e-5
#: every hospital takes part in every round: no privacy amplification by sampling
SAMPLE_RATE = 1.0
#: secure sums of model updates per round (FedMTL clips and noises encoder and head jointly)
MECHANISMS_PER_ROUND = 1
ACCOUNTANT = "rdp"
#: RDP orders: Opacus' defaults (1.1 … 63) widened at both ends, since ε may be large (few
#: hospitals, no sampling) or very small
_ALPHAS = ([1 + x / 100 for x in range(1, 10)] + [1 + x / 10.0 for x in range(1, 100)]
           + list(range(12, 64)) + list(range(64, 512, 16)))
#: applied when clipping so that the float norm of a clipped update never exceeds C
_CLIP_SAFETY = 1.0 - 1e-12

ASSUMPTION = (
    "Semi-honest hospitals: each draws its noise share from its own CSPRNG (AES-256-CTR keyed "
    "from the operating system, never from the run seed) and keeps it secret. A hospital knows "
    "its own share, so c colluding hospitals can subtract theirs from the revealed sum; the noise"
    " left has multiplier z*sqrt((m - c)/m), and epsilon_by_colluding_hospitals gives the "
    "guarantee for each c. m is the number of hospitals whose shares add up to the full noise "
    "(all of them, or --min-hospitals). Noise is continuous Gaussian in float64, then rounded to "
    "the secure aggregation's fixed point (2^-16) together with the clipped update."
)

#: draws standard normal noise: ``source(n)`` → float64 tensor of n N(0, 1) values
NoiseSource = Callable[[int], torch.Tensor]


def clip_to_norm(update: torch.Tensor, clip: float) -> torch.Tensor:
    """``update`` scaled down to L2 norm ``clip`` if it is longer; unchanged inside the ball."""
    norm = float(torch.linalg.vector_norm(update))
    if norm <= clip:
        return update
    return update * (clip / norm * _CLIP_SAFETY)


def private_noise_source(rng: SecureRandom | None = None) -> NoiseSource:
    """Standard normal draws from a CSPRNG (a fresh :class:`SecureRandom` by default).

    Private to the hospital: another hospital, even knowing the run's ``--seed``, cannot
    reproduce (and so cannot subtract) this hospital's noise.
    """
    stream = rng or SecureRandom()
    return stream.standard_normal


def seeded_noise_source(generator: torch.Generator) -> NoiseSource:
    """Standard normal draws from a seeded ``generator``: TESTS ONLY (reproducible, so never
    private); real runs use :func:`private_noise_source`."""
    return lambda n: torch.randn(n, generator=generator, dtype=torch.float64)


@dataclass
class DistributedGaussian:
    """One hospital's part of the distributed Gaussian mechanism.

    Args:
        clip: L2 bound C on the hospital's update (the sensitivity of the sum).
        noise_multiplier: z; the revealed sum carries noise of std z·C when ``noise_shares``
            hospitals take part.
        noise_shares: m, the number of hospitals whose shares add up to the full noise.
        source: standard normal draws (:func:`private_noise_source` in real runs).
    """

    clip: float
    noise_multiplier: float
    noise_shares: int
    source: NoiseSource

    @property
    def share_std(self) -> float:
        """Standard deviation of this hospital's noise share per coordinate: z·C/√m."""
        return self.noise_multiplier * self.clip / math.sqrt(self.noise_shares)

    def contribution(self, update: torch.Tensor, accepted: bool) -> torch.Tensor:
        """What the hospital secret-shares: [clip(update) + its noise share, 1].

        A rejected update contributes zeros (never its values: they may be non-finite) but the
        noise share all the same, so the revealed sum always carries the full noise.
        """
        flat = update.reshape(-1).to(torch.float64)
        body = clip_to_norm(flat, self.clip) if accepted else torch.zeros_like(flat)
        noisy = body + self.source(flat.numel()) * self.share_std
        return torch.cat([noisy, torch.ones(1, dtype=torch.float64)])


def mean_update(total: torch.Tensor) -> torch.Tensor:
    """The noisy mean update from a revealed sum of :meth:`DistributedGaussian.contribution`."""
    taking_part = round(float(total[-1]))
    return total[:-1] / taking_part


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """ε after ``rounds`` Gaussian mechanisms of multiplier z at sample rate 1 (RDP)."""
    return sgm_epsilon("rdp", noise_multiplier, SAMPLE_RATE, rounds * MECHANISMS_PER_ROUND,
                       delta, alphas=_ALPHAS)


def calibrate(target_epsilon: float, rounds: int, delta: float) -> float:
    """The noise multiplier z that spends ``target_epsilon`` over ``rounds`` (to within 0.01)."""
    return smallest_multiplier(lambda z: epsilon(z, rounds, delta), target_epsilon)


def colluding_multiplier(noise_multiplier: float, noise_shares: int, colluding: int) -> float:
    """The multiplier left once ``colluding`` hospitals subtract their shares: z·√((m − c)/m)."""
    if not 0 <= colluding < noise_shares:
        raise ValueError(f"colluding must be in [0, {noise_shares}), got {colluding}")
    return noise_multiplier * math.sqrt((noise_shares - colluding) / noise_shares)


def resolve_delta(config: TrainConfig) -> float:
    """Hospital-level δ of the run (``--central-delta`` or :data:`DEFAULT_DELTA`)."""
    return config.central_delta if config.central_delta is not None else DEFAULT_DELTA


def resolve_noise_multiplier(config: TrainConfig) -> float:
    """z: ``--noise-multiplier``, or calibrated from ``--central-epsilon`` (deterministic, so
    every hospital and the coordinator obtain the same value)."""
    if config.central_noise_multiplier is not None:
        return float(config.central_noise_multiplier)
    if config.central_epsilon is None:
        raise ValueError("central DP needs a noise multiplier or a target epsilon")
    return calibrate(config.central_epsilon, config.rounds, resolve_delta(config))


def noise_shares(config: TrainConfig, n_hospitals: int) -> int:
    """m: all hospitals, or ``--min-hospitals`` if the run may go on after dropouts."""
    return config.min_hospitals if config.min_hospitals is not None else n_hospitals


def mechanism(config: TrainConfig, n_hospitals: int) -> DistributedGaussian:
    """This hospital's mechanism for the run (noise from :func:`private_noise_source`)."""
    return DistributedGaussian(clip=config.central_clip,
                               noise_multiplier=resolve_noise_multiplier(config),
                               noise_shares=noise_shares(config, n_hospitals),
                               source=private_noise_source())


def privacy_record(config: TrainConfig, n_hospitals: int,
                   record_level: dict[str, Any] | None = None) -> dict[str, Any]:
    """What privacy.json records about hospital-level DP (``record_level``: DP-SGD ε per
    hospital, when combined)."""
    z, delta = resolve_noise_multiplier(config), resolve_delta(config)
    m = noise_shares(config, n_hospitals)
    by_colluders = {str(c): epsilon(colluding_multiplier(z, m, c), config.rounds, delta)
                    for c in range(m)}
    return {
        "mechanism": "Gaussian noise on the secure sum of clipped hospital model updates "
                     "(DP-FedAvg, noise added in shares by the hospitals)",
        "neighbouring_relation": "hospital level, zero-out: one hospital's entire contribution "
                                 "in every round replaced by zeros",
        "clip": config.central_clip,
        "noise_multiplier": z,
        "noise_multiplier_from": ("--noise-multiplier" if config.central_noise_multiplier
                                  is not None else "--central-epsilon"),
        "target_epsilon": config.central_epsilon,
        "hospitals": n_hospitals,
        "noise_shares": m,
        "noise_std_per_hospital": z * config.central_clip / math.sqrt(m),
        "noise_std_of_sum": z * config.central_clip,
        "rounds": config.rounds,
        "mechanisms_per_round": MECHANISMS_PER_ROUND,
        "sample_rate": SAMPLE_RATE,
        "accountant": ACCOUNTANT,
        "secure_rng": True,  # mechanism() always draws from private_noise_source
        "delta": delta,
        "epsilon": by_colluders["0"],
        "epsilon_against_one_hospital": by_colluders[str(min(1, m - 1))],
        "epsilon_two_honest_hospitals": by_colluders[str(max(m - 2, 0))],
        "epsilon_all_others_collude": by_colluders[str(m - 1)],
        "epsilon_by_colluding_hospitals": by_colluders,
        "assumption": ASSUMPTION,
        "record_level_dp_sgd_epsilon": record_level,
    }


def check_options(config: TrainConfig) -> None:
    """UserError for central-DP or update-validation options that cannot work (before launch)."""
    def positive(value: float | None) -> bool:
        return value is None or (value > 0 and math.isfinite(value))

    checks: list[tuple[bool, str]] = [
        (positive(config.central_clip), "--clip must be a positive number"),
        (positive(config.central_noise_multiplier), "--noise-multiplier must be a positive number"),
        (positive(config.central_epsilon), "--central-epsilon must be a positive number"),
        (config.central_delta is None or 0 < config.central_delta < 1,
         "--central-delta must be in (0, 1)"),
        (config.central_dp or (config.central_noise_multiplier, config.central_epsilon,
                               config.central_delta) == (None, None, None),
         "--noise-multiplier, --central-epsilon and --central-delta need --central-dp"),
        (not config.central_dp
         or (config.central_noise_multiplier is None) != (config.central_epsilon is None),
         "--central-dp needs exactly one of --noise-multiplier and --central-epsilon"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    if not config.central_dp:
        return
    n_hospitals = sum(p.is_dir() for p in Path(config.fed).glob("hospital_*"))
    if n_hospitals and resolve_delta(config) >= 1 / n_hospitals:
        raise UserError(f"--central-delta must be below 1/{n_hospitals} (the number of "
                        f"hospitals), and far below it; default {DEFAULT_DELTA:g}")
    try:
        resolve_noise_multiplier(config)
    except ValueError as err:
        raise UserError(f"--central-epsilon {config.central_epsilon}: cannot be reached in "
                        f"{config.rounds} rounds ({err})") from None
