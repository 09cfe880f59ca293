"""The pristine inputs of the training-level fuzz cases, built once per test session.

One tiny federation (2 hospitals, 60 patients) and ONE tiny successful run on it (1 round of the
TINY_MODEL, secure), shared by tests/test_fuzz_{train,evaluate,compare,sweep,node}.py; every case
works on its own copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import train

from helpers.federation import TINY_MODEL, small_federation

#: command-line options of the tiny model (TINY_MODEL as `crypten-fl train` options)
TINY_OPTIONS: tuple[str, ...] = (
    "--rounds", "1", "--batch-size", str(TINY_MODEL["batch_size"]),
    "--d-model", str(TINY_MODEL["d_model"]), "--heads", str(TINY_MODEL["n_heads"]),
    "--layers", str(TINY_MODEL["n_layers"]), "--timeout", str(TINY_MODEL["timeout"]),
)
_CACHE: dict[str, Path] = {}


def tiny_federation(factory: pytest.TempPathFactory) -> Path:
    """FED/ with two hospitals (cached for the session)."""
    if "fed" not in _CACHE:
        _CACHE["fed"] = small_federation(factory.mktemp("fuzz-fed"), n_patients=60, seed=3,
                                         hospitals=2)
    return _CACHE["fed"]


def tiny_run(factory: pytest.TempPathFactory) -> Path:
    """RUN/ of one secure round on :func:`tiny_federation` (cached for the session)."""
    if "run" not in _CACHE:
        out = factory.mktemp("fuzz-run") / "run"
        train(TrainConfig(fed=str(tiny_federation(factory)), rounds=1, **TINY_MODEL), out)
        _CACHE["run"] = out
    return _CACHE["run"]
