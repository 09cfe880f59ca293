"""Server optimizers of adaptive federated optimization (Reddi et al., ICLR 2021).

FedAvg replaces the global model ``x`` by the (securely revealed) mean of the hospitals' models.
FedOpt reads that as one step on a *pseudo-gradient* ``Δ = mean − x`` and lets a server optimizer
take it instead:

* ``fedavg``     x ← x + η·Δ                                   (η = 1 is FedAvg itself)
* ``fedavgm``    m ← β₁·m + Δ;  x ← x + η·m                    (Hsu et al., 2019)
* ``fedadagrad`` v ← v + Δ²
* ``fedadam``    v ← β₂·v + (1 − β₂)·Δ²
* ``fedyogi``    v ← v − (1 − β₂)·Δ²·sign(v − Δ²)
  the three adaptive ones with m ← β₁·m + (1 − β₁)·Δ;  x ← x + η·m / (√v + τ)

The step uses nothing but ``x`` and the revealed mean, which every hospital holds identically, so
it is post-processing of what secure aggregation (or ``--central-dp``) already reveals: each
hospital applies the same deterministic step in float64 and there is still no server that sees
more. Its state (m, v) is checkpointed with the strategy and handed to a hospital that rejoins.
"""

from __future__ import annotations

import torch
from crypten_fl.fedtrain.config import ServerOptSettings


class ServerOptimizer:
    """One server optimizer over a flat float64 parameter vector; state ``m`` and ``v``."""

    def __init__(self, settings: ServerOptSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.lr, self.beta1, self.beta2, self.tau = settings.resolved()
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.steps = 0

    def step(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The new global parameters from the current ``x`` and the revealed ``mean``."""
        x, mean = x.to(torch.float64), mean.to(torch.float64)
        if self.settings.is_plain_fedavg():
            self.steps += 1
            return mean.clone()
        delta = mean - x
        if self.m is None or self.m.numel() != delta.numel():
            self.m = torch.zeros_like(delta)
            self.v = torch.zeros_like(delta)
        assert self.v is not None
        if self.name == "fedavg":
            direction = delta
        elif self.name == "fedavgm":
            self.m = self.beta1 * self.m + delta
            direction = self.m
        else:
            self.m = self.beta1 * self.m + (1 - self.beta1) * delta
            square = delta * delta
            if self.name == "fedadagrad":
                self.v = self.v + square
            elif self.name == "fedadam":
                self.v = self.beta2 * self.v + (1 - self.beta2) * square
            else:  # fedyogi
                self.v = self.v - (1 - self.beta2) * square * torch.sign(self.v - square)
            direction = self.m / (self.v.sqrt() + self.tau)
        self.steps += 1
        return x + self.lr * direction

    def state(self) -> dict[str, torch.Tensor]:
        """m, v and the step count as tensors (checkpoint, handed to a rejoining hospital)."""
        out = {"steps": torch.tensor(self.steps, dtype=torch.int64)}
        if self.m is not None and self.v is not None:
            out |= {"m": self.m.clone(), "v": self.v.clone()}
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state` (an empty dict: a fresh optimizer)."""
        self.steps = int(state["steps"]) if "steps" in state else 0
        self.m = state["m"].to(torch.float64).clone() if "m" in state else None
        self.v = state["v"].to(torch.float64).clone() if "v" in state else None
