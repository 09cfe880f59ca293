"""DP-SGD with distributed noise: one DP-SGD step of the whole federation per secure sum.

With ``--dp-noise local`` (the default) every hospital runs DP-SGD on its own records with the
full noise, and the secure mean of the hospitals' models averages K such noisy models. With
``--dp-noise distributed`` (horizontal; FedPer for its shared layers, its personal ones keeping
their full local noise) every step is one DP-SGD step of the federation (DP-FedSGD with secure
aggregation):

1. every hospital samples each of its training records with the common probability q = 1/S
   (S steps per pass; the union of the K samples is a Poisson sample of all records);
2. it clips each sampled record's gradient to norm C (automatic clipping by default) and sums
   them;
3. it adds its own share of the noise, N(0, σ²C²/(K − 1)), drawn from its CSPRNG;
4. the K noisy sums are added with CrypTen secret sharing; only their sum is revealed:
   Σ clipped gradients + N(0, σ²C²·K/(K − 1));
5. every hospital divides by the federation's expected batch q·N and takes the same Adam step,
   so all hospitals hold the same model at all times (nothing else is exchanged).

Guarantee: a hospital knows its own noise share, so what it sees of another hospital's records is
the subsampled Gaussian mechanism with multiplier σ (the other K − 1 shares), for every step:
(ε, δ)-DP with respect to any one other hospital, accounted with DP-SGD's accountant (PRV) at
sample rate q over rounds × local epochs × S steps, σ calibrated to ``--dp-epsilon``. c
colluding hospitals subtract c shares: multiplier σ·√((K − c)/(K − 1)) (:func:`colluding`),
σ/√(K − 1) if all others collude; an observer outside the federation sees nothing (the sum is
revealed to the hospitals only, over authenticated encrypted channels).

Against local noise, at the same ε, sample rate and steps, with K hospitals of N/K records: the
mean of the K hospitals' local steps carries noise of std σC·√K/(q·N) per coordinate (each
hospital's σC on q·N/K records, averaged over K), a distributed step σC·√(K/(K − 1))/(q·N):
√(K − 1) times less (1.7× with 4 hospitals). What it costs: every DP-SGD step is a secure sum of
all trained parameters (S per pass instead of one mean per round), and the guarantee assumes
that the other K − 1 hospitals do not all collude. The total number N of training records is
revealed once (FedAvg's weights reveal it anyway); δ defaults to N^−1.1 of the federation.

References: Abadi et al., "Deep learning with differential privacy", CCS 2016; McMahan et al.,
ICLR 2018; Kairouz, Liu & Steinke, ICML 2021 (noise shares added before secure aggregation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crypten_fl.fedtrain.local_training.dp_accountant import epsilon
from crypten_fl.fedtrain.local_training.dp_recipe import DP_BATCH, MIN_DP_BATCH, epoch_steps

#: the --dp-noise value that selects this mechanism
MODE = "distributed"


@dataclass(frozen=True)
class FederationPlan:
    """The common DP-SGD schedule of a federation with distributed noise.

    Args:
        hospitals: K, the hospitals that add noise shares (all of them, every step).
        records: N, the training records of all hospitals together.
        batch: the federation's expected batch q·N.
        steps_per_epoch: S = 1/q, the steps every hospital takes per pass.
    """

    hospitals: int
    records: int
    batch: int
    steps_per_epoch: int

    @property
    def sample_rate(self) -> float:
        return 1.0 / self.steps_per_epoch

    @property
    def noise_share(self) -> float:
        """The fraction of the noise std each hospital adds: 1/√(K − 1), so that the shares of
        the K − 1 hospitals other than any observer add up to the calibrated σ."""
        return 1.0 / math.sqrt(self.hospitals - 1)


def federation_batch(records: int, hospitals: int) -> int:
    """The recipe's expected batch of the federation: :data:`DP_BATCH` per hospital, capped at
    a quarter of all records (at least four steps per pass) and at least :data:`MIN_DP_BATCH`."""
    return max(1, min(DP_BATCH * hospitals, max(MIN_DP_BATCH, records // 4), records))


def plan(records: int, hospitals: int, batch: int | None = None) -> FederationPlan:
    """The schedule for ``records`` training records in ``hospitals`` hospitals; ``batch``
    (``--dp-batch-size``) is the federation's expected batch, else :func:`federation_batch`."""
    if hospitals < 2:
        raise ValueError("distributed noise needs at least two hospitals")
    batch = batch if batch is not None else federation_batch(records, hospitals)
    steps = epoch_steps(records, batch)
    return FederationPlan(hospitals=hospitals, records=records, batch=batch,
                          steps_per_epoch=steps)


def multiplier_left(sigma: float, hospitals: int, colluding: int) -> float:
    """The noise multiplier on a hospital's records once ``colluding`` hospitals (not it)
    subtract their shares: σ·√((K − c)/(K − 1)); c = 0 is an observer holding no share."""
    if not 0 <= colluding < hospitals:
        raise ValueError(f"colluding must be in [0, {hospitals}), got {colluding}")
    return sigma * math.sqrt((hospitals - colluding) / (hospitals - 1))


def collusion_report(parties: int, share_std: float, spent: Callable[[int], float],
                     who: str = "hospital") -> dict[str, Any]:
    """The privacy.json fields of a mechanism whose noise is shared by ``parties`` parties (each
    adding ``share_std``): ``spent(c)`` is the ε left when c of them collude (0: an observer
    holding no share); the guarantee is ``spent(1)``, against any one other ``who``."""
    return {
        "noise": MODE,
        "hospitals_adding_noise": parties,
        "noise_share_std": share_std,
        "guarantee": f"against any one other {who} (it knows its own noise share); "
                     "epsilon_by_colluding_hospitals for more",
        "epsilon_by_colluding_hospitals": {str(c): spent(c) for c in range(1, parties)},
        "epsilon_observer_without_share": spent(0),
    }


def report(federation: FederationPlan, private: dict[str, Any]) -> dict[str, Any]:
    """What privacy.json adds for distributed noise to a hospital's DP-SGD report ``private``
    (its ε is the guarantee against any one other hospital)."""
    sigma, q = float(private["noise_multiplier"]), federation.sample_rate
    steps, delta = int(private["steps"]), float(private["delta"])
    k, accountant = federation.hospitals, str(private["accountant"])
    share_std = sigma * float(private["max_grad_norm"]) * federation.noise_share
    return {**collusion_report(k, share_std, lambda c: epsilon(
                multiplier_left(sigma, k, c), q, steps, delta, accountant)),
            "federation_records": federation.records,
            "expected_batch_size": federation.batch}
