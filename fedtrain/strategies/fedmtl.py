"""FedMTL: federated multi-task learning, one task (head) per hospital, coupled by a proximal term.

Each hospital k solves its own task with a personal head v_k on a shared encoder w:

    min_{w, v_k}  L_k(w, v_k) + (λ / 2) · ‖v_k − v̄‖²,      v̄ = (1/K) Σ_j v_j

the multi-task coupling of MOCHA (Smith et al., NeurIPS 2017) in the mean-regularised form used by
Ditto (Li et al., ICML 2021). The encoder is securely averaged each round (as in FedPer); the heads
are securely averaged too, but the mean v̄ only serves as the anchor of the proximal term: a
hospital's own head is never replaced and never sent in the clear. The proximal term is applied as
a step after each optimizer step, v_k ← v_k − min(1, η·λ)·(v_k − v̄), which uses no data and so costs
no privacy under DP-SGD. λ = 0 gives FedPer's independent heads; large λ pulls every head to the
mean, approaching FedPer with a shared head.

With ``--central-dp`` one mechanism per round covers both: each hospital clips the concatenation
[encoder update, change of its head this round] to norm C and noises it; the revealed noisy sum
moves the encoder and the anchor (v̄ ← v̄ + noisy mean head change, which without noise is exactly
the mean of the heads, since all heads start equal). The anchor is checkpointed.
"""

from __future__ import annotations

import torch
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.strategies.base import ParameterSharing, RoundResult, SharedBlock
from torch import nn


class FedMTL(ParameterSharing):
    """Shared encoder, personal heads pulled toward the secure mean of all heads."""

    name = "fedmtl"
    summary = "FedMTL: shared encoder, each hospital's head pulled to the secure mean of heads"
    personalised = True
    shares_updates = True
    supports_central_dp = True
    tolerates_dropouts = True
    receives = frozenset({tags.MOMENTS, tags.WEIGHTED_MODEL_SUM, tags.MEAN_OF_HEADS,
                          tags.METRIC_HISTOGRAMS})
    reveals = ("to all hospitals, each round: the weighted sum of encoder parameters with the "
               "total number of training examples, and the unweighted mean of the heads")

    def __init__(self, config, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, session)
        self.anchor: dict[str, torch.Tensor] = self._personal(self.session.trainer.state_dict())

    def is_shared(self, key: str) -> bool:
        return self.session.trainer.model.is_shared_key(key, self.config.personal_layers)

    def _personal(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in state.items() if not self.is_shared(k)}

    def _pull_heads(self, model: nn.Module) -> None:
        factor = min(1.0, self.session.trainer.config.lr * self.config.mtl_lambda)
        if factor == 0.0:
            return
        params = dict(model.named_parameters())
        for key, target in self.anchor.items():
            param = params.get(key)
            if param is not None:
                param.sub_(factor * (param - target))

    def train_round(self, round_index: int) -> RoundResult:
        start = self.session.trainer.state_dict()
        loss = self.session.trainer.train_epochs(self.config.local_epochs,
                                                 after_step=self._pull_heads,
                                                 proximal=self.proximal_term())
        return RoundResult(train_loss=loss, exchanged_elements=self.share_update(round_index,
                                                                                 start))

    def shared_blocks(self, start: dict[str, torch.Tensor]) -> list[SharedBlock]:
        """The encoder (weighted by training examples) and the head (weight 1, mean = anchor)."""
        blocks = super().shared_blocks(start)
        heads = self._personal(self.session.trainer.state_dict())
        if heads:
            blocks.append(SharedBlock(tags.MEAN_OF_HEADS, 1.0, heads,
                                      {k: start[k] for k in heads}, self.anchor))
        return blocks

    def adopt(self, means: list[dict[str, torch.Tensor]]) -> None:
        super().adopt(means)
        if len(means) > 1:
            self.anchor = means[1]

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {**super().extra_state(), **{f"anchor.{k}": v for k, v in self.anchor.items()}}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        super().load_extra_state(state)
        anchor = {k[len("anchor."):]: v for k, v in state.items() if k.startswith("anchor.")}
        if anchor:
            self.anchor = anchor

    def global_state(self) -> dict[str, torch.Tensor]:
        """The shared encoder and the mean of the heads (the anchor); not this hospital's head."""
        return {**super().global_state(), **{f"anchor.{k}": v for k, v in self.anchor.items()}}

    def load_global_state(self, state: dict[str, torch.Tensor]) -> None:
        super().load_global_state({k: v for k, v in state.items() if not k.startswith("anchor.")})
        self.anchor = {k[len("anchor."):]: v for k, v in state.items() if k.startswith("anchor.")}
