"""Centralized baseline: one process trains on the pooled training data of all hospitals.

This is the plaintext upper bound the federated strategies are compared with; it deliberately
pools the data, so it protects nothing. It runs as a single party that reads every hospital dir.
"""

from __future__ import annotations

import torch
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.strategies.base import ParameterSharing


class Centralized(ParameterSharing):
    """Pooled training; the single process holds every hospital's training data."""

    name = "centralized"
    summary = "all hospitals' data pooled in one process (plaintext upper bound)"
    single_process = True
    receives = frozenset({tags.MOMENTS, tags.METRIC_HISTOGRAMS})
    reveals = "everything: all hospitals' training data are pooled in one process (baseline)"
    final_model = "model"

    def is_shared(self, key: str) -> bool:
        return False

    def models_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"model": self.session.trainer.state_dict()}
