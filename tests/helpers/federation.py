"""A small fixture federation and tiny model options shared by the training-level tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crypten_fl.mimic_etl.partition.pipeline import partition

from helpers.cohort_fixture import random_cohort

#: a model small enough that a round takes a second with real party processes
TINY_MODEL: dict[str, Any] = {"batch_size": 64, "d_model": 16, "n_heads": 2, "n_layers": 1,
                              "dim_feedforward": 32, "head_hidden": 16, "timeout": 30}


def small_federation(root: Path, n_patients: int, seed: int, hospitals: int) -> Path:
    """A random cohort under ``root/cohort`` partitioned into ``root/fed`` (Dirichlet, seed 0)."""
    random_cohort(root / "cohort", n_patients=n_patients, seed=seed)
    partition(root / "cohort", root / "fed", hospitals=hospitals, seed=0)
    return root / "fed"


def both_federations(root: Path, n_patients: int, seed: int) -> dict[str, Path]:
    """A 3-hospital horizontal federation and a vertical one of the same random cohort."""
    small_federation(root, n_patients=n_patients, seed=seed, hospitals=3)
    partition(root / "cohort", root / "vfed", hospitals=None, vertical=True, seed=0)
    return {"horizontal": root / "fed", "vertical": root / "vfed"}
