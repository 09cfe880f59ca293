"""Patient-level train/val/test splits within each hospital.

A patient's stays all land in the same split; fractions are of patients, not stays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from crypten_fl.common.errors import UserError

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_SPLIT: tuple[float, float, float] = (0.7, 0.1, 0.2)


def parse_split(text: str) -> tuple[float, float, float]:
    """Parse ``--split`` text such as ``0.7,0.1,0.2`` and check it (see `check_split`)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        fractions = tuple(float(p) for p in parts)
    except ValueError:
        raise UserError(f"--split {text}: expected three numbers like 0.7,0.1,0.2") from None
    if len(fractions) != 3:
        raise UserError(f"--split {text}: expected three fractions train,val,test")
    check_split(fractions)
    return fractions  # type: ignore[return-value]


def check_split(fractions: Sequence[float]) -> None:
    """Raise UserError unless ``fractions`` are three finite non-negative numbers summing to 1."""
    shown = ",".join(f"{f:g}" for f in fractions)
    if len(fractions) != 3:
        raise UserError(f"--split {shown}: expected three fractions train,val,test")
    if not all(math.isfinite(f) for f in fractions) or any(f < 0 for f in fractions):
        raise UserError(f"--split {shown}: fractions must be non-negative numbers")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise UserError(f"--split {shown}: fractions sum to {sum(fractions):g}, not 1")


def apportion(total: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total``, proportional to ``weights`` (largest remainder)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts


def split_sizes(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Patients per split: proportional, and no split with a positive fraction left empty if ``n``
    allows it (one patient moves from the largest split)."""
    sizes = apportion(n, fractions)
    for j in range(len(sizes)):
        if fractions[j] > 0 and sizes[j] == 0 and sizes.max() > 1:
            sizes[np.argmax(sizes)] -= 1
            sizes[j] += 1
    return sizes


def assign_splits(
    hospital_of_patient: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of every patient, drawn per hospital.

    Args:
        hospital_of_patient: (P,) hospital of each patient (all zeros for a vertical federation,
            whose parties share one split).
        fractions: train/val/test fractions of each hospital's patients.
        rng: random generator (consumed in hospital order, so results are reproducible).
    """
    split = np.empty(len(hospital_of_patient), dtype=np.int8)
    for k in np.unique(hospital_of_patient):
        members = rng.permutation(np.flatnonzero(hospital_of_patient == k))
        sizes = split_sizes(len(members), fractions)
        split[members] = np.repeat(np.arange(len(sizes), dtype=np.int8), sizes)
    return split
