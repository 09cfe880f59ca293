"""DP-SGD for one hospital with Opacus 1.6.0: configuration, attachment, accounting state.

One :class:`opacus.PrivacyEngine` (hence one accountant) is created per hospital for the WHOLE
federated run and never re-created per round (opacus #688: re-creating it forgets the steps
already taken and under-reports ε). The noise multiplier is calibrated once, for
``total_epochs = rounds × local_epochs`` passes over the hospital's training split, so that ε
reaches ``target_epsilon`` exactly when the run ends. Poisson sampling with rate
``1 / ceil(N / batch)``, flat per-sample clipping at ``max_grad_norm``, Gaussian noise, RDP
accountant by default.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

if TYPE_CHECKING:  # Opacus is imported only when DP-SGD is used (it costs a second per party)
    from opacus import PrivacyEngine
    from opacus.optimizers import DPOptimizer


@dataclass(frozen=True)
class DPConfig:
    """Differential-privacy budget and clipping of one hospital's DP-SGD.

    Args:
        target_epsilon: ε to be spent by the end of the whole run.
        total_epochs: passes over the training split in the whole run (rounds × local epochs);
            the noise multiplier is calibrated for exactly this many; training past it is refused.
        delta: δ; None means ``1 / N_train^1.1`` — strictly below 1/N (the usual requirement, so
            that releasing one record in the clear is not (ε, δ)-DP), decreasing with N.
        max_grad_norm: per-sample gradient L2 clipping bound C.
        accountant: Opacus accountant, ``"rdp"`` (default) or ``"prv"`` / ``"gdp"``.
    """

    target_epsilon: float
    total_epochs: int
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        if self.target_epsilon <= 0:
            raise ValueError(f"target_epsilon must be > 0, got {self.target_epsilon}")
        if self.total_epochs < 1:
            raise ValueError(f"total_epochs must be >= 1, got {self.total_epochs}")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")

    def resolve_delta(self, n_train: int) -> float:
        """δ for a training split of ``n_train`` records."""
        return self.delta if self.delta is not None else float(n_train) ** -1.1


@dataclass
class PrivateTraining:
    """The Opacus-wrapped objects of one hospital (created once per run)."""

    engine: PrivacyEngine
    module: nn.Module
    optimizer: DPOptimizer
    loader: DataLoader
    delta: float
    max_grad_norm: float


def make_private(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    config: DPConfig,
    noise_generator: torch.Generator,
) -> PrivateTraining:
    """Wrap model/optimizer/loader for DP-SGD (hooks mode), calibrated to the config's budget."""
    from opacus import PrivacyEngine

    delta = config.resolve_delta(len(loader.dataset))  # type: ignore[arg-type]
    with warnings.catch_warnings():  # "Secure RNG turned off": documented in docs/model.md
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
    private_module, private_optimizer, private_loader = engine.make_private_with_epsilon(
        module=module,
        optimizer=optimizer,
        data_loader=loader,
        target_epsilon=config.target_epsilon,
        target_delta=delta,
        epochs=config.total_epochs,
        max_grad_norm=config.max_grad_norm,
        poisson_sampling=True,
        noise_generator=noise_generator,
        grad_sample_mode="hooks",
    )
    return PrivateTraining(
        engine=engine,
        module=private_module,
        optimizer=private_optimizer,
        loader=private_loader,
        delta=delta,
        max_grad_norm=config.max_grad_norm,
    )


def accountant_state(private: PrivateTraining) -> dict[str, Any]:
    """The accountant's history as plain data (safe for ``torch.load(weights_only=True)``)."""
    state = private.engine.accountant.state_dict()
    return {
        "mechanism": str(state["mechanism"]),
        "history": [[float(s), float(q), int(n)] for s, q, n in state["history"]],
    }


def load_accountant_state(private: PrivateTraining, state: dict[str, Any]) -> None:
    """Restore the accountant's history saved by :func:`accountant_state`."""
    private.engine.accountant.load_state_dict(
        {
            "mechanism": state["mechanism"],
            "history": [(float(s), float(q), int(n)) for s, q, n in state["history"]],
        }
    )


def privacy_report(private: PrivateTraining) -> dict[str, float | int | bool]:
    """ε spent so far and the mechanism's parameters (``secure_rng``: noise from a CSPRNG)."""
    history = private.engine.accountant.history
    return {
        "epsilon": float(private.engine.get_epsilon(private.delta)),
        "delta": private.delta,
        "noise_multiplier": float(private.optimizer.noise_multiplier),
        "max_grad_norm": private.max_grad_norm,
        "sample_rate": float(1.0 / len(private.loader)),
        "steps": int(sum(n for _, _, n in history)),
        "secure_rng": bool(private.engine.secure_mode),
    }
