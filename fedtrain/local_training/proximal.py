"""FedProx's proximal term (Li et al., MLSys 2020) for a hospital's local objective.

Each round a hospital minimises ``L_k(w) + (μ/2)·‖w − w_t‖²`` over its shared parameters, where
``w_t`` is the global model it received at the start of the round: local training cannot drift far
from the global model on non-IID data. Parameters that never leave the hospital (FedPer's and
FedMTL's personal head layers) carry no term.

The term's gradient ``μ·(w − w_t)`` is added to each parameter's gradient just before the
optimizer step — under DP-SGD after per-example clipping and noise, which is exact for the
penalised objective since the term depends on no example, and costs no privacy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ProximalTerm:
    """μ and the anchor ``w_t`` of each shared parameter of one round."""

    mu: float
    anchors: list[tuple[nn.Parameter, torch.Tensor]]

    @classmethod
    def around(cls, model: nn.Module, mu: float, is_shared: Callable[[str], bool]
               ) -> ProximalTerm:
        """The term around ``model``'s current values of the parameters ``is_shared`` selects
        (any key spelling the model uses, e.g. DP attention's)."""
        anchors = [(param, param.detach().clone()) for name, param in model.named_parameters()
                   if param.requires_grad and is_shared(name)]
        return cls(mu, anchors)

    @torch.no_grad()
    def add_gradient(self) -> None:
        """``grad += μ·(w − w_t)`` for every anchored parameter that has a gradient."""
        for param, anchor in self.anchors:
            if param.grad is not None:
                param.grad.add_(param - anchor, alpha=self.mu)
