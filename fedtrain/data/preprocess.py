"""Per-hospital preprocessing with normalisation statistics pooled across hospitals.

Steps for a split's ``values (N, T, F)`` float32 (NaN = missing) and ``mask (N, T, F)`` uint8:

1. forward-fill each feature within a stay along T, only from observed bins
   (observed = ``mask == 1`` and the value is finite);
2. impute what is still missing (before the first observation) with the pooled training mean;
3. z-score with the pooled training mean and standard deviation (population, ddof = 0);
4. the model input is ``[z-scored values, original mask]`` → ``(N, T, 2F)`` float32.

Pooled statistics without revealing any hospital's own: each hospital computes
:func:`local_moments` on its TRAINING split; the secure layer sums these vectors element-wise across
hospitals (CrypTen) and reveals only the sum; :meth:`Normalizer.from_moments` turns the sum into
means and standard deviations. Counts, sums and sums of squares are additive, so the pooled
statistics equal those of the pooled raw data exactly.

Moment vector layout (float64, length ``3·(F + K)``), i.e. ``v.reshape(3, F + K)``:

* row 0: counts of observed values, row 1: sums, row 2: sums of squares;
* columns ``0 … F-1``: time-series features in manifest order (observed raw values of every bin);
* columns ``F … F+K-1``: numeric static columns in ``NUMERIC_STATIC`` order (``age``,
  ``weight_kg``), non-null values of each stay. A party without static columns contributes zeros.

Magnitudes: sums of squares grow as n·x²; keep them within the secure layer's fixed-point range
(CrypTen int64 with 16 fractional bits holds about 1.4e14) or scale by a public constant first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.data.static_encoding import (
    encode_static,
    n_numeric_static,
    n_static_features,
    numeric_static_matrix,
    static_feature_names,
)

#: Below this (relative to max(1, |mean|)) a standard deviation is treated as zero → replaced by 1.
MIN_RELATIVE_STD = 1e-6


def observed_mask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Boolean ``(N, T, F)``: the bin's value was observed (mask set and value finite)."""
    if values.shape != mask.shape or values.ndim != 3:
        raise UserError(f"values {values.shape} and mask {mask.shape} must both be (N, T, F)")
    return (mask != 0) & np.isfinite(values)


def _moments(data: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``(3, C)`` counts, sums, sums of squares over all axes but the last."""
    x = np.where(present, data, 0.0).astype(np.float64).reshape(-1, data.shape[-1])
    p = present.reshape(-1, data.shape[-1])
    return np.stack([p.sum(axis=0, dtype=np.float64), x.sum(axis=0), (x * x).sum(axis=0)])


def local_moments(
    values: np.ndarray, mask: np.ndarray, static: pl.DataFrame | None = None
) -> torch.Tensor:
    """This hospital's training-split moment vector (layout in the module docstring).

    Args:
        values: ``(N, T, F)`` raw values of the TRAINING split (NaN = missing).
        mask: ``(N, T, F)`` observed mask.
        static: the training split's static columns, or None for a party without them.
    """
    series = _moments(values, observed_mask(values, mask))
    if static is None:
        numeric = np.zeros((3, n_numeric_static()))
    else:
        matrix = numeric_static_matrix(static)
        numeric = _moments(matrix, np.isfinite(matrix))
    return torch.from_numpy(np.concatenate([series, numeric], axis=1).reshape(-1).copy())


def _mean_std(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and safe std per column of a ``(3, C)`` moment matrix (count 0 → mean 0, std 1)."""
    count, total, squares = moments
    count = np.rint(count)  # counts are integers; drop fixed-point noise from the secure sum
    safe = np.maximum(count, 1.0)
    mean = np.where(count > 0, total / safe, 0.0)
    std = np.sqrt(np.maximum(squares / safe - mean * mean, 0.0))
    tiny = std <= MIN_RELATIVE_STD * np.maximum(1.0, np.abs(mean))
    return mean, np.where((count > 0) & ~tiny, std, 1.0)


@dataclass(frozen=True)
class ModelInputs:
    """A preprocessed split: ``x (N, T, 2F)``, ``static (N, S)``, ``labels (N, L)`` or None."""

    x: torch.Tensor
    static: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Normalizer:
    """Pooled means / standard deviations of the time-series features and numeric static columns."""

    feature_mean: np.ndarray
    feature_std: np.ndarray
    feature_count: np.ndarray
    static_mean: np.ndarray
    static_std: np.ndarray
    static_count: np.ndarray

    @classmethod
    def from_moments(cls, total: torch.Tensor | np.ndarray) -> Normalizer:
        """Build from the element-wise SUM over hospitals of :func:`local_moments` vectors."""
        flat = np.asarray(total.detach().cpu() if isinstance(total, torch.Tensor) else total)
        flat = flat.astype(np.float64).reshape(-1)
        n_static = n_numeric_static()
        if flat.size % 3 or flat.size // 3 <= n_static:
            raise ValueError(f"moment vector of length {flat.size} is not 3·(F + {n_static})")
        if not np.all(np.isfinite(flat)):
            raise ValueError("moment vector contains NaN or inf")
        moments = flat.reshape(3, -1)
        n_features = moments.shape[1] - n_static
        mean, std = _mean_std(moments)
        return cls(
            feature_mean=mean[:n_features],
            feature_std=std[:n_features],
            feature_count=np.rint(moments[0, :n_features]),
            static_mean=mean[n_features:],
            static_std=std[n_features:],
            static_count=np.rint(moments[0, n_features:]),
        )

    @property
    def n_features(self) -> int:
        """F, the number of time-series features."""
        return int(self.feature_mean.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists of floats)."""
        return {name: getattr(self, name).tolist() for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: np.asarray(data[k], dtype=np.float64) for k in cls.__dataclass_fields__})

    def standardize_values(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Forward-fill, mean-impute and z-score ``(N, T, F)`` values → float32, no NaN."""
        if values.shape[-1] != self.n_features:
            raise UserError(
                f"values have {values.shape[-1]} features, statistics {self.n_features}"
            )
        filled = forward_fill(values, observed_mask(values, mask))
        filled = np.where(np.isnan(filled), self.feature_mean, filled)
        return ((filled - self.feature_mean) / self.feature_std).astype(np.float32)

    def model_inputs(
        self,
        values: np.ndarray,
        mask: np.ndarray,
        static: pl.DataFrame | None,
        labels: np.ndarray | None = None,
    ) -> ModelInputs:
        """Preprocess one split into model tensors (``static`` None → a zero-width static input)."""
        z = self.standardize_values(values, mask)
        x = np.concatenate([z, (mask != 0).astype(np.float32)], axis=-1)
        if static is None:
            s = np.zeros((x.shape[0], 0), dtype=np.float32)
        else:
            if static.height != x.shape[0]:
                raise UserError(f"static has {static.height} rows, values {x.shape[0]} stays")
            s = encode_static(static, self.static_mean, self.static_std)
        y = None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.float32))
        return ModelInputs(torch.from_numpy(x), torch.from_numpy(s), y)


def forward_fill(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Carry the last observed value forward along axis 1 (T); NaN before the first observation."""
    n_steps = values.shape[1]
    steps = np.arange(n_steps).reshape(1, n_steps, 1)
    last = np.maximum.accumulate(np.where(observed, steps, -1), axis=1)
    filled = np.take_along_axis(values.astype(np.float64), np.maximum(last, 0), axis=1)
    return np.where(last >= 0, filled, np.nan)


def static_width(has_static: bool) -> int:
    """S for the model: the encoded static width, or 0 for a party without static columns."""
    return n_static_features() if has_static else 0


def preprocessing_spec() -> dict[str, Any]:
    """What training does to a hospital's raw values, as data (compared between hospitals before
    the first round, fedtrain/sessions/schema_check.py): the steps of this module, the smallest
    standard deviation kept and the encoded static columns (numeric, flags, vocabularies)."""
    return {
        "steps": ["forward-fill observed values within a stay",
                  "impute the rest with the pooled training mean",
                  "z-score with the pooled training mean and std (ddof 0)",
                  "input [z-scored values, mask]"],
        "min_relative_std": MIN_RELATIVE_STD,
        "static_columns": static_feature_names(),
    }
