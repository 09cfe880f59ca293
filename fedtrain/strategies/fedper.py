"""FedPer (Arivazhagan et al., 2019): federated base layers, personalised head.

The encoder and the first head layers are securely averaged every round; the last
``--personal-layers`` head layers never leave the hospital, and each hospital is evaluated with
its own head.
"""

from __future__ import annotations

from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.strategies.base import ParameterSharing


class FedPer(ParameterSharing):
    """Shares the base (encoder + head layers before the cut); keeps the personal layers."""

    name = "fedper"
    summary = "FedPer: shared encoder (secure mean), a personal head per hospital"
    personalised = True
    shares_updates = True
    supports_central_dp = True
    supports_distributed_dp = True  # the base's noise is shared, the personal layers' local
    tolerates_dropouts = True
    receives = frozenset({tags.MOMENTS, tags.WEIGHTED_MODEL_SUM, tags.METRIC_HISTOGRAMS})
    reveals = ("to all hospitals, each round: the weighted sum of the base-layer parameters and "
               "the total number of training examples; personal layers are never sent")

    def is_shared(self, key: str) -> bool:
        return self.session.trainer.model.is_shared_key(key, self.config.personal_layers)
