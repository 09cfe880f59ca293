"""Horizontal federated learning: FedAvg (McMahan et al., AISTATS 2017) with secure aggregation.

Every round each hospital trains the whole model on its own data for ``--local-epochs``; the new
global model is the weighted mean of the hospitals' models (weights = training examples), computed
from CrypTen additive shares so that only the weighted sum and the total weight are revealed.

With ``--dp-epsilon`` and ``--dp-noise distributed`` a round is instead ``--local-epochs`` passes
of DP-SGD steps of the whole federation, each step one secure sum of the hospitals' clipped,
noise-shared gradient sums (fedtrain/local_training/dp_distributed.py): every hospital applies
the same revealed sum, so all hold the same model and no model mean is needed.
"""

from __future__ import annotations

from typing import Any

import torch
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.local_training import dp_distributed
from crypten_fl.fedtrain.secure import group, tags
from crypten_fl.fedtrain.strategies.base import ParameterSharing, RoundResult


class Horizontal(ParameterSharing):
    """FedAvg: all parameters are shared."""

    name = "horizontal"
    summary = "FedAvg: the secure weighted mean of every hospital's model each round"
    shares_updates = True
    supports_central_dp = True
    tolerates_dropouts = True
    supports_distributed_dp = True
    receives = frozenset({tags.MOMENTS, tags.WEIGHTED_MODEL_SUM, tags.METRIC_HISTOGRAMS})
    reveals = ("to all hospitals, each round: the weighted sum of all hospitals' model "
               "parameters and the total number of training examples")
    final_model = "model"

    @classmethod
    def _check_distributed_dp(cls, config: TrainConfig, supported: str) -> None:
        """Distributed noise: no model updates are shared, so no option acting on them holds."""
        super()._check_distributed_dp(config, supported)
        cls._refuse_update_options(config)

    @classmethod
    def receives_with(cls, config: TrainConfig) -> frozenset[str]:
        """With distributed DP-SGD noise: the record count and each step's noisy gradient sum
        instead of the model means."""
        if not config.distributed_dp:
            return super().receives_with(config)
        return frozenset({tags.MOMENTS, tags.TRAINING_RECORDS, tags.NOISY_GRADIENT_SUM,
                          tags.METRIC_HISTOGRAMS})

    def train_round(self, round_index: int) -> RoundResult:
        if self.session.federation is None:
            return super().train_round(round_index)
        trainer = self.session.trainer
        loss = trainer.train_epochs(self.config.local_epochs)  # a secure sum every step
        trained = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        steps = self.config.local_epochs * self.session.federation.steps_per_epoch
        return RoundResult(train_loss=loss, exchanged_elements=steps * trained)

    def privacy_report(self) -> dict[str, Any] | None:
        private = super().privacy_report()
        if private is None or self.session.federation is None:
            return private
        return {**private, **dp_distributed.report(self.session.federation, private)}

    def models_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        secure_group = group.current()
        lead = secure_group.members[0] if secure_group else 0  # lowest hospital still present
        if self.session.rank != lead:  # every hospital holds the same global model
            return {}
        return {"model": self.session.trainer.state_dict()}
