"""Patient subgroups for disparity analysis: age band, sex, race group.

Every hospital assigns its own test stays to the fixed list :data:`SUBGROUPS` (the same order at
every hospital, so that per-subgroup summaries can be summed element-wise). Each family covers
every stay exactly once: stays with a missing or unexpected value go to its ``unknown`` group.

* age (years at admission, from ``age``): 18-44, 45-64, 65-79, 80+ (lower bound inclusive);
  below 18 or missing → unknown;
* sex (``sex``): F, M;
* race (``race_group`` as written by `extract`): white, black, hispanic, asian, other, unknown.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
from crypten_fl.mimic_etl.partition.files import read_parquet

AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("18-44", 18.0, 45.0), ("45-64", 45.0, 65.0), ("65-79", 65.0, 80.0), ("80+", 80.0, math.inf),
)
SEXES = ("F", "M")
RACES = ("white", "black", "hispanic", "asian", "other")
UNKNOWN = "unknown"
FAMILIES: dict[str, tuple[str, ...]] = {
    "age": (*(name for name, _, _ in AGE_BANDS), UNKNOWN),
    "sex": (*SEXES, UNKNOWN),
    "race": (*RACES, UNKNOWN),
}
#: (family, group) in the fixed order of the per-subgroup summaries
SUBGROUPS: tuple[tuple[str, str], ...] = tuple(
    (family, group) for family, groups in FAMILIES.items() for group in groups)
COLUMNS = {"age": "age", "sex": "sex", "race": "race_group"}


def age_band(age: float | None) -> str:
    """The band of one age (``unknown`` below 18 or missing)."""
    if age is None or not math.isfinite(age):
        return UNKNOWN
    for name, low, high in AGE_BANDS:
        if low <= age < high:
            return name
    return UNKNOWN


def _groups(values: list, family: str) -> list[str]:
    if family == "age":
        return [age_band(None if v is None else float(v)) for v in values]
    known = SEXES if family == "sex" else RACES
    return [v if v in known else UNKNOWN for v in values]


def membership(attributes: dict[str, list], n: int) -> np.ndarray:
    """``(len(SUBGROUPS), n)`` bool: row i says which stays are in ``SUBGROUPS[i]``.

    Args:
        attributes: ``{"age": [...], "sex": [...], "race": [...]}``, one value per stay (a family
            missing from the dict puts every stay into its ``unknown`` group).
        n: number of stays.
    """
    if any(len(v) != n for v in attributes.values()):
        raise ValueError(f"subgroup attributes must have {n} values each")
    rows = []
    for family, groups in FAMILIES.items():
        assigned = np.array(_groups(attributes.get(family, [None] * n), family), dtype=object)
        rows += [assigned == g for g in groups]
    return np.array(rows, dtype=bool).reshape(len(SUBGROUPS), n)


def read_attributes(hospital_dir: Path, split: str = "test") -> dict[str, list]:
    """Age, sex and race group of each stay of one hospital's split, in file order.

    Only the columns the hospital's file has are read (a vertical party without the static group
    has none of them).
    """
    path = Path(hospital_dir) / f"{split}.parquet"
    present = [c for c in COLUMNS.values() if c in pl.read_parquet_schema(path)]
    frame = read_parquet(path, present)
    return {family: frame[column].to_list() for family, column in COLUMNS.items()
            if column in present}
