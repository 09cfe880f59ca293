"""Fixture builders for the plaintext ML core (model, trainer, metrics tests)."""

from __future__ import annotations

import numpy as np
import torch
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from crypten_fl.fedtrain.models.transformer import ICUTransformer

N_FEATURES = 4
N_STATIC = 3
N_BINS = 6
N_LABELS = 3


def tiny_model(seed: int = 0, dropout: float = 0.1, pooling: str = "cls") -> ICUTransformer:
    """A small ICUTransformer built deterministically from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ICUTransformer(
            N_FEATURES,
            N_STATIC,
            n_labels=N_LABELS,
            n_bins=N_BINS,
            d_model=16,
            n_heads=2,
            n_layers=1,
            dim_feedforward=32,
            dropout=dropout,
            pooling=pooling,  # type: ignore[arg-type]
            head_hidden=(16,),
        )


def learnable_inputs(n: int, seed: int = 0) -> ModelInputs:
    """A synthetic problem the model can learn: label j = [mean over time of feature j > 0].

    Values are standard normal with a per-stay offset, the mask is 1 everywhere except random
    gaps (value then 0), the static vector is noise.
    """
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=(n, 1, N_FEATURES))
    values = offset + 0.5 * rng.normal(size=(n, N_BINS, N_FEATURES))
    mask = (rng.random((n, N_BINS, N_FEATURES)) < 0.8).astype(np.float32)
    labels = (offset[:, 0, :N_LABELS] > 0).astype(np.float32)
    x = np.concatenate([values * mask, mask], axis=-1).astype(np.float32)
    static = rng.normal(size=(n, N_STATIC)).astype(np.float32)
    return ModelInputs(torch.from_numpy(x), torch.from_numpy(static), torch.from_numpy(labels))
