"""Static (per-stay) columns → a fixed-width float vector, identical layout in every hospital.

Layout of the encoded vector (``static_feature_names()`` spells it out):

1. numeric columns (:data:`NUMERIC_STATIC`: ``age``, ``weight_kg``) z-scored with the pooled
   mean/std (see ``fedtrain.data.preprocess``); a missing value is imputed by the mean (z = 0);
2. one ``<col>_missing`` 0/1 flag per nullable numeric column (``weight_kg``);
3. one-hot blocks for each categorical column in :data:`CATEGORICAL_VOCABULARIES` order.

The vocabularies are fixed, public MIMIC-IV value sets (MIMIC-IV v2.2 / v3.1 documentation; see
/work/shared/mimic-iv-reference.md), never learnt from data: a vocabulary learnt per hospital would
give different layouts, and one learnt across hospitals would reveal which values each has.
A value outside the vocabulary, or null, goes to the column's fallback bucket.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl
from crypten_fl.common.errors import UserError


class Vocabulary(NamedTuple):
    """Known values of a categorical column and the bucket for anything else (one of them)."""

    values: tuple[str, ...]
    fallback: str


#: Numeric static columns, in moment-vector order, and whether each gets a missing flag.
NUMERIC_STATIC: tuple[tuple[str, bool], ...] = (("age", False), ("weight_kg", True))

#: The one place where categorical value sets live.
CATEGORICAL_VOCABULARIES: dict[str, Vocabulary] = {
    "sex": Vocabulary(("M", "F", "unknown"), "unknown"),
    "race_group": Vocabulary(
        ("white", "black", "hispanic", "asian", "other", "unknown"), "unknown"
    ),
    "admission_type": Vocabulary(
        (
            "AMBULATORY OBSERVATION",
            "DIRECT EMER.",
            "DIRECT OBSERVATION",
            "ELECTIVE",
            "EU OBSERVATION",
            "EW EMER.",
            "OBSERVATION ADMIT",
            "SURGICAL SAME DAY ADMISSION",
            "URGENT",
            "other",
        ),
        "other",
    ),
    # v2.2: Medicaid / Medicare / Other; v3.x adds Private and No charge.
    "insurance": Vocabulary(("Medicaid", "Medicare", "Private", "No charge", "Other"), "Other"),
    "first_careunit": Vocabulary(
        (
            "Medical Intensive Care Unit (MICU)",
            "Surgical Intensive Care Unit (SICU)",
            "Cardiac Vascular Intensive Care Unit (CVICU)",
            "Medical/Surgical Intensive Care Unit (MICU/SICU)",
            "Trauma SICU (TSICU)",
            "Coronary Care Unit (CCU)",
            "Neuro Surgical Intensive Care Unit (Neuro SICU)",
            "Neuro Intermediate",
            "Neuro Stepdown",
            "other",
        ),
        "other",
    ),
    "anchor_year_group": Vocabulary(
        ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019", "2020 - 2022", "other"),
        "other",
    ),
}


def n_numeric_static() -> int:
    """K, the number of numeric static columns in the moment vector."""
    return len(NUMERIC_STATIC)


def static_feature_names() -> list[str]:
    """Names of the encoded static vector's columns, in order."""
    names = [col for col, _ in NUMERIC_STATIC]
    names += [f"{col}_missing" for col, nullable in NUMERIC_STATIC if nullable]
    for col, vocab in CATEGORICAL_VOCABULARIES.items():
        names += [f"{col}={value}" for value in vocab.values]
    return names


def n_static_features() -> int:
    """S, the width of the encoded static vector."""
    return len(static_feature_names())


def _require_columns(frame: pl.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"static columns missing from the split: {', '.join(missing)}")


def numeric_static_matrix(frame: pl.DataFrame) -> np.ndarray:
    """``(N, K)`` float64 matrix of the numeric static columns; null → NaN."""
    columns = [col for col, _ in NUMERIC_STATIC]
    _require_columns(frame, columns)
    return np.column_stack(
        [frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in columns]
    ).astype(np.float64)


def one_hot(column: pl.Series, vocab: Vocabulary) -> np.ndarray:
    """``(N, len(vocab.values))`` 0/1 float32; unknown values and nulls → the fallback bucket."""
    index = {value: i for i, value in enumerate(vocab.values)}
    fallback = index[vocab.fallback]
    codes = np.array(
        [
            index.get(v.strip(), fallback) if v is not None else fallback
            for v in column.cast(pl.String)
        ],
        dtype=np.int64,
    )
    out = np.zeros((len(codes), len(vocab.values)), dtype=np.float32)
    out[np.arange(len(codes)), codes] = 1.0
    return out


def encode_static(frame: pl.DataFrame, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Encode a split's static columns as ``(N, S)`` float32 with the pooled numeric mean/std.

    Args:
        frame: one row per stay with the static columns of the data contract.
        mean: ``(K,)`` pooled mean of the numeric static columns.
        std: ``(K,)`` pooled standard deviation (already safe: > 0).
    """
    _require_columns(frame, list(CATEGORICAL_VOCABULARIES))
    numeric = numeric_static_matrix(frame)
    missing = np.isnan(numeric)
    z = (np.where(missing, mean, numeric) - mean) / std
    nullable = [k for k, (_, has_flag) in enumerate(NUMERIC_STATIC) if has_flag]
    blocks = [z.astype(np.float32), missing[:, nullable].astype(np.float32)]
    blocks += [one_hot(frame[col], vocab) for col, vocab in CATEGORICAL_VOCABULARIES.items()]
    return np.concatenate(blocks, axis=1)
