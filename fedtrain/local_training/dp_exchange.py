"""Record-level DP for split and vertical learning: what leaves a party is clipped and noised.

Both strategies exchange per-record quantities inside CrypTen at every step, so DP-SGD on the
local model alone does not cover them (docs/privacy.md, "DP for split and vertical learning").
Each party adds Gaussian noise from its own CSPRNG (fedtrain/secure_noise.py) to every quantity
computed from its records before it is secret-shared or used, with L2 bounds enforced in the
clear by the party that holds the records:

* split (``--cut 1``): each hospital Poisson-samples its rows; the client part's per-example
  gradients are clipped to C and noised (Opacus' DPOptimizer); the per-example gradient of the
  one-layer encrypted server, (g_i h_iᵀ, g_i), is clipped to C by scaling g_i (its owner knows
  g_i and h_i), and every hospital adds N(0, (νC)²) to its own share of the encrypted gradient;
* vertical: each party clips every record's bottom embedding to C and adds N(0, (νC)²) before
  sharing it, trains its bottom model with clipped and noised per-example gradients, and the
  label party adds N(0, (ν√L/2)²) to every output gradient σ(z_i) − y_i.

Accounting: one Opacus ``RDPAccountant`` per party for the whole run. The ``mechanisms``
Gaussian mechanisms of one step touch the same records and each has noise ν times its bound, so
together they are one Gaussian mechanism of multiplier ν/√mechanisms; the accountant takes one
step of that multiplier per training step. The guarantee is stated for the replace-one relation
(one record's values replaced, the number of records fixed), because both strategies reveal each
party's number of records. Vertical uses every record once per epoch in a public order (sample
rate 1): the replace-one sensitivity is twice the bound, i.e. multiplier ν/(2√mechanisms),
exactly. Split samples with rate q: its add/remove RDP is Opacus', and the replace-one RDP
follows from Mironov's weak triangle inequality (replace = remove, then add; "Rényi
differential privacy", CSF 2017, Prop. 11):
``R_α ≤ (α − ½)/(α − 1) · R_2α + R_2α−1``.

>>> clip_rows(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), 1.0).norm(dim=1)
tensor([1.0000, 0.5000])
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from crypten_fl.fedtrain.local_training.dp_accountant import smallest_multiplier
from crypten_fl.fedtrain.secure_noise import SecureRandom
from torch import nn

#: RDP orders α: 1.5 … 496 with 2α an integer, so that the orders 2α and 2α − 1 of the weak
#: triangle inequality take Opacus' exact integer-order path (fractional orders cost a series)
ALPHAS: list[float] = ([1 + x / 2 for x in range(1, 46)] + [float(a) for a in range(24, 64, 2)]
                       + [float(a) for a in range(64, 512, 16)])
#: applied when clipping so that the float norm of a clipped row never exceeds the bound
_CLIP_SAFETY = 1.0 - 1e-6
RELATION = ("record level, replace-one: one stay's values (features and labels) replaced by "
            "any others, the number of stays fixed")


def clip_rows(x: torch.Tensor, bound: float) -> torch.Tensor:
    """Each row of ``x`` scaled down to L2 norm ``bound`` if longer (differentiable)."""
    norms = x.detach().norm(dim=1, keepdim=True)
    return x * torch.clamp(bound * _CLIP_SAFETY / norms.clamp_min(1e-30), max=1.0)


def clip_linear_gradients(g: torch.Tensor, h: torch.Tensor, bound: float) -> torch.Tensor:
    """``g`` rescaled per row so that the per-example gradient of a Linear layer,
    ``(g_i h_iᵀ, g_i)``, has L2 norm at most ``bound``: its norm is ‖g_i‖·√(‖h_i‖² + 1)."""
    norms = g.norm(dim=1, keepdim=True) * torch.sqrt(h.detach().pow(2).sum(1, keepdim=True) + 1)
    return g * torch.clamp(bound * _CLIP_SAFETY / norms.clamp_min(1e-30), max=1.0)


def add_noise_to_share(param_grads: list[Any], std: float, rng: SecureRandom,
                       dealer: bool = False) -> None:
    """Add N(0, std²) from ``rng`` to this party's share of each encrypted gradient (additive
    shares: the secret becomes gradient + this party's noise; nobody else knows the noise).
    With ``dealer``, add instead this party's share of the one N(0, std²) the TTP dealer draws
    (fedtrain/secure/dealer_noise.py; every party must call it, in the same order)."""
    from crypten_fl.fedtrain.secure.dealer_noise import noise_share

    for grad in param_grads:
        if dealer:
            grad.share = grad.share + noise_share(grad.size(), std,
                                                  grad.encoder._precision_bits)
            continue
        noise = rng.normal_like(torch.empty(grad.size(), dtype=torch.float64), std)
        grad.share = grad.share + grad.encoder.encode(noise)


def replace_one_rdp(sample_rate: float, multiplier: float, steps: int) -> np.ndarray:
    """RDP at :data:`ALPHAS` of ``steps`` sampled Gaussian mechanisms (add/remove multiplier
    ``multiplier``) under the replace-one relation."""
    from opacus.accountants.analysis.rdp import compute_rdp

    orders = np.asarray(ALPHAS)
    if sample_rate >= 1.0:  # sensitivity 2: the Gaussian mechanism of half the multiplier
        return compute_rdp(q=1.0, noise_multiplier=multiplier / 2, steps=steps, orders=orders)
    twice = compute_rdp(q=sample_rate, noise_multiplier=multiplier, steps=steps,
                        orders=2 * orders)
    less = compute_rdp(q=sample_rate, noise_multiplier=multiplier, steps=steps,
                       orders=2 * orders - 1)
    return (orders - 0.5) / (orders - 1) * twice + less


def epsilon(sample_rate: float, multiplier: float, steps: int, delta: float) -> float:
    """Replace-one ε after ``steps`` (0 steps: 0)."""
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if steps == 0:
        return 0.0
    rdp = replace_one_rdp(sample_rate, multiplier, steps)
    with warnings.catch_warnings():  # an optimum at the edge of the orders: valid, only loose
        warnings.filterwarnings("ignore", message="Optimal order is the")
        eps, _ = get_privacy_spent(orders=ALPHAS, rdp=rdp, delta=delta)
    return float(eps)


def calibrate(target_epsilon: float, sample_rate: float, steps: int, delta: float) -> float:
    """The smallest combined multiplier (to within 0.01 in ε) whose replace-one ε over ``steps``
    is at most ``target_epsilon``."""
    return smallest_multiplier(lambda sigma: epsilon(sample_rate, sigma, steps, delta),
                               target_epsilon)


@dataclass
class ExchangeAccountant:
    """One party's DP bookkeeping for the whole run (never re-created per round).

    Args:
        target_epsilon: ε to spend by the end of the planned steps.
        delta: δ (the caller resolves the default 1/N^1.1, as DP-SGD does).
        sample_rate: q per step (1: every record used once per epoch, no amplification).
        planned_steps: steps of the whole run; the noise is calibrated for exactly these.
        mechanisms: Gaussian mechanisms per step on the same records.
        clip: the L2 bound C of each mechanism (labels: √L/2, see the module docstring).
        description: what is clipped and noised, for privacy.json.
    """

    target_epsilon: float
    delta: float
    sample_rate: float
    planned_steps: int
    mechanisms: int
    clip: float
    description: str
    combined_multiplier: float = field(init=False)
    accountant: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from opacus.accountants import RDPAccountant

        self.combined_multiplier = calibrate(self.target_epsilon, self.sample_rate,
                                             self.planned_steps, self.delta)
        self.accountant = RDPAccountant()

    @property
    def noise_multiplier(self) -> float:
        """ν: every mechanism's noise std is ν times its bound."""
        return self.combined_multiplier * math.sqrt(self.mechanisms)

    @property
    def steps(self) -> int:
        return int(sum(n for _, _, n in self.accountant.history))

    def step(self) -> None:
        """Account one training step (all its mechanisms)."""
        if self.steps >= self.planned_steps:
            raise ValueError(f"DP budget was calibrated for {self.planned_steps} steps")
        self.accountant.step(noise_multiplier=self.combined_multiplier,
                             sample_rate=self.sample_rate)

    def state(self) -> torch.Tensor:
        """The accountant's history as a float64 tensor (for a checkpoint)."""
        return torch.tensor([[s, q, n] for s, q, n in self.accountant.history],
                            dtype=torch.float64).reshape(-1, 3)

    def load_state(self, history: torch.Tensor) -> None:
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in history.tolist()]

    def report(self) -> dict[str, Any]:
        """privacy.json's entry for this party."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the")
            add_remove = (float(self.accountant.get_epsilon(self.delta, alphas=ALPHAS))
                          if self.steps else 0.0)
        return {
            "epsilon": epsilon(self.sample_rate, self.combined_multiplier, self.steps,
                               self.delta),
            "epsilon_add_remove": add_remove,
            "delta": self.delta,
            "neighbouring_relation": RELATION,
            "noise_multiplier": self.noise_multiplier,
            "combined_noise_multiplier": self.combined_multiplier,
            "mechanisms_per_step": self.mechanisms,
            "max_grad_norm": self.clip,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "accountant": "rdp",
            "secure_rng": True,  # every draw of the mechanisms comes from a SecureRandom
            "mechanism": self.description,
        }


def noise_std(multiplier: float, bound: float, parties: int, mode: str) -> float:
    """The std of the noise one party adds to its share of an encrypted gradient sum: ν·bound
    (``local``), its 1/(P − 1) share of that variance (``distributed``), or for ``dealer`` the
    std of the dealer's one draw, ν·bound, of which each party adds a share."""
    return multiplier * bound / (math.sqrt(parties - 1) if mode == "distributed" else 1.0)


def total_noise_std(multiplier: float, bound: float, parties: int, mode: str) -> float:
    """The std of all the noise on the secret: the P parties' draws (``local``,
    ``distributed``) or the dealer's one."""
    std = noise_std(multiplier, bound, parties, mode)
    return std if mode == "dealer" else std * math.sqrt(parties)


def noise_report(report: dict[str, Any], mode: str, parties: int, std: float,
                 local_mechanisms: int = 0) -> dict[str, Any]:
    """What privacy.json adds to a party's ``report`` for ``--dp-noise`` ``mode`` of its
    encrypted gradient sums (``std``: :func:`noise_std`); nothing for local noise."""
    if mode == "distributed":
        return distributed_report(report, parties, std, local_mechanisms)
    if mode == "dealer":
        return dealer_report(std)
    return {}


def dealer_report(share_std: float) -> dict[str, Any]:
    """What privacy.json adds when the TTP dealer draws the noise of the encrypted sums."""
    return {
        "noise": "dealer",
        "dealer_noise_std": share_std,
        "guarantee": "against any coalition of parties, as long as the TTP dealer colludes with "
                     "none (the trust its Beaver triples already need): the dealer draws the "
                     "noise once and secret-shares it, so no party knows it",
    }


def distributed_report(report: dict[str, Any], parties: int, share_std: float,
                       local_mechanisms: int = 0) -> dict[str, Any]:
    """What privacy.json adds to a party's ``report`` when each of ``parties`` parties adds a
    1/(P − 1) share of the noise variance to the mechanisms other than ``local_mechanisms``
    (which keep their full local noise). Its ε is the guarantee against any one other party; c
    colluding parties leave those mechanisms the multiplier ν·√((P − c)/(P − 1))."""
    from crypten_fl.fedtrain.local_training.dp_distributed import (
        collusion_report,
        multiplier_left,
    )

    nu, q = float(report["noise_multiplier"]), float(report["sample_rate"])
    steps, delta = int(report["steps"]), float(report["delta"])
    shared = int(report["mechanisms_per_step"]) - local_mechanisms

    def spent(colluding: int) -> float:
        left = multiplier_left(nu, parties, colluding)
        combined = (shared / left**2 + local_mechanisms / nu**2) ** -0.5
        return epsilon(q, combined, steps, delta)

    return collusion_report(parties, share_std, spent, who="party")


def private_optimizer(module: nn.Module, optimizer: torch.optim.Optimizer, *,
                      noise_multiplier: float, clip: float, expected_batch_size: float,
                      rng: SecureRandom) -> tuple[nn.Module, torch.optim.Optimizer]:
    """``module`` wrapped for per-example gradients (backward with per-row, un-averaged
    gradients) and ``optimizer`` wrapped to clip them to ``clip``, add N(0, (ν·clip)²) from
    ``rng`` and divide by ``expected_batch_size`` (Opacus' DPOptimizer, noise from the CSPRNG).
    Parameters that do not require gradients are left alone."""
    from crypten_fl.fedtrain.local_training.secure_opacus import SecureNoiseDPOptimizer
    from opacus import GradSampleModule

    wrapped = GradSampleModule(module, batch_first=True, loss_reduction="sum")
    dp_optimizer = SecureNoiseDPOptimizer(optimizer, rng=rng, noise_multiplier=noise_multiplier,
                                          max_grad_norm=clip,
                                          expected_batch_size=max(1, round(expected_batch_size)),
                                          loss_reduction="mean")
    return wrapped, dp_optimizer
