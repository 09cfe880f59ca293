"""Per-stay summaries of the time series, fed to the head beside the Transformer's representation.

For every time-series feature, over the stay's bins: the mean, maximum, minimum and last value
of the (forward-filled, z-scored) series and the fraction of bins in which it was observed —
the hand-engineered features of the MIMIC benchmarks' logistic-regression baselines (Harutyunyan
et al., Scientific Data 2019). They cost no parameters and no data beyond the model's own input;
a linear head reads them directly. Why they are there: under DP the noise grows with the number
of trained parameters, and a linear model on good features learns with far fewer of them than a
Transformer learns its features (Tramèr & Boneh, "Differentially private learning needs better
features (or much more data)", ICLR 2021); without DP they also help (docs/privacy.md, "Stay
summaries and a linear head").

Values are clamped to ±``CLAMP`` standard deviations so that one extreme measurement cannot
dominate a record's per-example gradient.

>>> x = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [10.0, 1.0]]])  # 1 stay, 3 bins, 1 feature
>>> [round(v, 4) for v in stay_summary(x, n_features=1)[0].tolist()]
[2.3333, 5.0, 0.0, 5.0, 0.6667]
"""

from __future__ import annotations

import torch

#: statistics per feature, in the order of the output's blocks
STATISTICS = ("mean", "max", "min", "last", "observed")
#: z-scores are clamped to ±CLAMP
CLAMP = 5.0


def summary_width(n_features: int) -> int:
    """Width of :func:`stay_summary`'s output for ``n_features`` time-series features."""
    return len(STATISTICS) * n_features


def stay_summary(x: torch.Tensor, n_features: int) -> torch.Tensor:
    """``(B, 5F)`` summaries of ``x (B, T, 2F)`` = [z-scored values, observed mask] per bin."""
    values = x[..., :n_features].clamp(-CLAMP, CLAMP)
    observed = x[..., n_features:]
    return torch.cat([values.mean(dim=1), values.amax(dim=1), values.amin(dim=1),
                      values[:, -1], observed.mean(dim=1)], dim=1)
