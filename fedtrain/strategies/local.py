"""Local baseline: each hospital trains alone on its own data; nothing is exchanged."""

from __future__ import annotations

from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.strategies.base import ParameterSharing


class Local(ParameterSharing):
    """No parameter is shared; each hospital keeps and is evaluated with its own model."""

    name = "local"
    summary = "each hospital trains alone (baseline; nothing is exchanged)"
    personalised = True
    tolerates_dropouts = True
    receives = frozenset({tags.MOMENTS, tags.METRIC_HISTOGRAMS})
    reveals = "nothing (no exchange between hospitals)"

    def is_shared(self, key: str) -> bool:
        return False
