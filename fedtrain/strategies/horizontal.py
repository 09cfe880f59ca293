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

import torch
from crypten_fl.fedtrain.secure import group, tags
from crypten_fl.fedtrain.strategies.base import ParameterSharing


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

    def models_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        secure_group = group.current()
        lead = secure_group.members[0] if secure_group else 0  # lowest hospital still present
        if self.session.rank != lead:  # every hospital holds the same global model
            return {}
        return {"model": self.session.trainer.state_dict()}
