"""DP-SGD for one hospital with Opacus 1.6.0: configuration, attachment, accounting state.

One :class:`opacus.PrivacyEngine` (hence one accountant) is created per hospital for the WHOLE
federated run and never re-created per round (opacus #688: re-creating it forgets the steps
already taken and under-reports ε). The noise multiplier is calibrated once, for
``total_epochs = rounds × local_epochs`` passes over the hospital's training split, so that ε
reaches ``target_epsilon`` exactly when the run ends. Poisson sampling with rate
``1 / ceil(N / batch)``, flat per-sample clipping at ``max_grad_norm``, Gaussian noise.

Accountant: Opacus' PRV accountant up to ε = 20, RDP above (fedtrain/local_training/
dp_accountant.py; Gopi, Lee & Wutschitz, "Numerical composition of differential privacy", NeurIPS
2021). PRV computes the privacy loss distribution of the composed subsampled Gaussian numerically
and returns an upper bound on ε (within 0.01 of the exact value); the RDP accountant's conversion
to (ε, δ) is looser, so at the same ε the noise multiplier is 7–10 % smaller (σ 1.90 against 2.06
for a 12k hospital at ε = 3). The replace-one ε stays an RDP bound (it needs RDP's weak triangle
inequality).

Randomness: the noise and the Poisson sampling come from a :class:`SecureRandom` (AES-256-CTR
keyed from the OS, fedtrain/secure_noise.py), never from ``--seed``: an observer who knows the
seed can neither subtract the noise nor tell which records were in a batch (amplification by
subsampling assumes the batches are secret). Opacus 1.6.0 draws noise with ``torch.normal`` and
samples with ``torch.rand``, both on a ``torch.Generator``, and its own ``secure_mode`` needs
``torchcsprng``, which is not installable; so :class:`SecurePrivacyEngine` builds a
:class:`SecureNoiseDPOptimizer` and a :class:`SecurePoissonSampler` instead of Opacus' own (the
two ``_prepare_*`` hooks of the pinned Opacus version; tests check both are in use).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from crypten_fl.fedtrain.local_training.dp_accountant import accountant_for, noise_multiplier
from crypten_fl.fedtrain.local_training.dp_recipe import CLIPPING_MODES, default_delta
from crypten_fl.fedtrain.secure_noise import SecureRandom
from torch import nn
from torch.utils.data import DataLoader

if TYPE_CHECKING:  # Opacus is imported only when DP-SGD is used (it costs a second per party)
    from opacus import PrivacyEngine
    from opacus.optimizers import DPOptimizer


#: the neighbouring relation of DP-SGD's ε (Opacus' accountants)
ADD_REMOVE = "record level, add/remove: one stay added to or removed from a hospital's data"


@dataclass(frozen=True)
class DPConfig:
    """Differential-privacy budget and clipping of one hospital's DP-SGD.

    Args:
        target_epsilon: ε to be spent by the end of the whole run.
        total_epochs: passes over the training split in the whole run (rounds × local epochs);
            the noise multiplier is calibrated for exactly this many; training past it is refused.
        delta: δ; None means ``1 / N_train^1.1`` — strictly below 1/N (the usual requirement, so
            that releasing one record in the clear is not (ε, δ)-DP), decreasing with N.
        max_grad_norm: per-sample gradient L2 bound C (the sensitivity).
        accountant: Opacus accountant, ``"prv"`` or ``"rdp"``; None: PRV up to ε = 20, RDP
            above (:func:`~crypten_fl.fedtrain.local_training.dp_accountant.accountant_for`).
        clipping: ``"flat"`` (g·min(1, C/‖g‖), Opacus) or ``"automatic"`` (g·C/(‖g‖ + γ),
            Bu et al.): both bound every per-sample gradient by C.
        recipe_chose: the settings the DP recipe chose rather than the user (for the record).
        steps_per_epoch: distributed noise (fedtrain/local_training/dp_distributed.py): the
            steps per pass that every hospital of the federation takes, sampling its records at
            the common rate 1/steps_per_epoch. None: this hospital's own rate 1/ceil(N/B).
        noise_share: the fraction of the step's noise std this party adds (1: all of it;
            distributed noise: 1/√(K − 1), the rest comes from the other hospitals' shares).
        global_batch: distributed noise: the federation's expected batch, which the summed
            gradient is divided by (None: this hospital's).
    """

    target_epsilon: float
    total_epochs: int
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str | None = None
    clipping: str = "flat"
    recipe_chose: tuple[str, ...] = ()
    steps_per_epoch: int | None = None
    noise_share: float = 1.0
    global_batch: float | None = None

    def __post_init__(self) -> None:
        if self.target_epsilon <= 0:
            raise ValueError(f"target_epsilon must be > 0, got {self.target_epsilon}")
        if self.total_epochs < 1:
            raise ValueError(f"total_epochs must be >= 1, got {self.total_epochs}")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.clipping not in CLIPPING_MODES:
            raise ValueError(f"clipping must be one of {CLIPPING_MODES}, got {self.clipping!r}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")
        if not 0 < self.noise_share <= 1:
            raise ValueError(f"noise_share must be in (0, 1], got {self.noise_share}")
        if self.accountant is None:
            object.__setattr__(self, "accountant", accountant_for(self.target_epsilon))

    def resolve_delta(self, n_train: int) -> float:
        """δ for a training split of ``n_train`` records."""
        return self.delta if self.delta is not None else default_delta(n_train)


@dataclass
class PrivateTraining:
    """The Opacus-wrapped objects of one hospital (created once per run)."""

    engine: PrivacyEngine
    module: nn.Module
    optimizer: DPOptimizer
    loader: DataLoader
    delta: float
    max_grad_norm: float
    clipping: str = "flat"


def make_private(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    config: DPConfig,
    rng: SecureRandom | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    n_records: int | None = None,
) -> PrivateTraining:
    """Wrap model/optimizer/loader for DP-SGD (hooks mode), calibrated to the config's budget.

    Noise and Poisson sampling come from ``rng`` (a fresh :class:`SecureRandom` by default).
    With ``config.steps_per_epoch`` (distributed noise) every step's noised gradient sum goes
    through ``reduce`` (the secure sum over the hospitals) before it is scaled and applied, and
    the default δ is that of the ``n_records`` of the whole federation.
    """
    from crypten_fl.fedtrain.local_training.secure_opacus import SecurePrivacyEngine

    delta = config.resolve_delta(n_records or len(loader.dataset))  # type: ignore[arg-type]
    steps = config.steps_per_epoch
    engine = SecurePrivacyEngine(accountant=config.accountant, rng=rng,
                                 automatic_clipping=config.clipping == "automatic",
                                 steps_per_epoch=steps, noise_share=config.noise_share,
                                 reduce=reduce)
    common = {"module": module, "optimizer": optimizer, "data_loader": loader,
              "max_grad_norm": config.max_grad_norm, "poisson_sampling": True,
              "grad_sample_mode": "hooks"}
    # this hospital's rate 1/len(loader), as Opacus' make_private_with_epsilon takes it, or the
    # federation's common rate 1/steps (distributed noise)
    steps_per_epoch = steps if steps is not None else len(loader)
    sigma = noise_multiplier(config.target_epsilon, delta, 1 / steps_per_epoch,
                             config.total_epochs * steps_per_epoch, str(config.accountant))
    private_module, private_optimizer, private_loader = engine.make_private(
        noise_multiplier=sigma, **common)
    if steps is not None and config.global_batch is not None:
        private_optimizer.expected_batch_size = config.global_batch
    return PrivateTraining(
        engine=engine,
        module=private_module,
        optimizer=private_optimizer,
        loader=private_loader,
        delta=delta,
        max_grad_norm=config.max_grad_norm,
        clipping=config.clipping,
    )


def accountant_state(private: PrivateTraining) -> dict[str, Any]:
    """The accountant's history as plain data (safe for ``torch.load(weights_only=True)``)."""
    state = private.engine.accountant.state_dict()
    return {
        "mechanism": str(state["mechanism"]),
        "history": [[float(s), float(q), int(n)] for s, q, n in state["history"]],
    }


def load_accountant_state(private: PrivateTraining, state: dict[str, Any]) -> None:
    """Restore the accountant's history saved by :func:`accountant_state`.

    The history (σ, q, steps) does not depend on the accountant, so one saved by another
    accountant (a run begun with the RDP accountant of earlier versions) is taken as it is: its
    rounds' noise was calibrated by a looser accountant, hence at least as large as this one's.
    """
    private.engine.accountant.load_state_dict(
        {
            "mechanism": private.engine.accountant.mechanism(),
            "history": [(float(s), float(q), int(n)) for s, q, n in state["history"]],
        }
    )


def privacy_report(private: PrivateTraining) -> dict[str, float | int | bool]:
    """ε spent so far and the mechanism's parameters (``secure_rng``: noise and sampling from a
    CSPRNG, read off the objects actually in use)."""
    from crypten_fl.fedtrain.local_training.dp_exchange import epsilon as replace_one_epsilon

    history = private.engine.accountant.history
    sample_rate = float(1.0 / len(private.loader))
    steps = int(sum(n for _, _, n in history))
    sigma = float(private.optimizer.noise_multiplier)
    return {
        "epsilon": float(private.engine.get_epsilon(private.delta)),
        "accountant": str(private.engine.accountant.mechanism()),
        "neighbouring_relation": ADD_REMOVE,
        # the strategies that share models reveal the record counts (the FedAvg weights): for
        # the relation that keeps counts fixed, replacing one record costs this (Mironov's weak
        # triangle inequality, fedtrain/local_training/dp_exchange.py)
        "epsilon_replace_one": replace_one_epsilon(sample_rate, sigma, steps, private.delta),
        "delta": private.delta,
        "noise_multiplier": sigma,
        "max_grad_norm": private.max_grad_norm,
        "clipping": private.clipping,
        "sample_rate": sample_rate,
        "steps": steps,
        "secure_rng": uses_secure_rng(private),
    }


def uses_secure_rng(private: PrivateTraining) -> bool:
    """Whether the optimizer's noise and the loader's sampling both come from a SecureRandom."""
    from crypten_fl.fedtrain.local_training.secure_opacus import (
        SecureNoiseDPOptimizer,
        SecurePoissonSampler,
    )

    return (isinstance(private.optimizer, SecureNoiseDPOptimizer)
            and isinstance(private.loader.batch_sampler, SecurePoissonSampler))
