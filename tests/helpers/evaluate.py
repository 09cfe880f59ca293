"""Fixture builders for the evaluate, compare and sweep tests."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.mimic_etl.partition.pipeline import partition

from helpers.cohort_fixture import CohortFixture, random_cohort, write_cohort

#: tiny model; 5 local epochs at lr 0.01 give the fixture models real signal in one round
SMALL: dict[str, Any] = {"rounds": 1, "local_epochs": 5, "lr": 0.01, "batch_size": 64,
                         "d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32,
                         "head_hidden": 16, "timeout": 60}


def signal_cohort(path: Path, n_patients: int = 600, seed: int = 4) -> CohortFixture:
    """A random cohort whose labels depend on the time series, so that a model learns quickly.

    Label j is positive when the stay's mean observed value of feature ``j mod F`` plus
    N(0, 8²) noise exceeds 50 (the values are N(50, 20²) per bin).
    """
    draft = random_cohort(path.parent / f".{path.name}-draft", n_patients=n_patients, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # stays with a feature never observed
        means = np.nanmean(draft.values, axis=1)  # (N, F)
    means = np.where(np.isnan(means), 50.0, means)
    n_labels = draft.labels.shape[1]
    noise = np.random.default_rng(seed + 1).normal(0.0, 8.0, (len(means), n_labels))
    labels = (means[:, np.arange(n_labels) % means.shape[1]] + noise > 50.0).astype(np.int8)
    return write_cohort(path, draft.subject_ids.tolist(), draft.careunits, labels,
                        stay_ids=draft.stay_ids.tolist(), seed=seed)


def signal_federation(root: Path, n_patients: int = 600, hospitals: int = 3,
                      vertical: bool = False) -> Path:
    """COHORT/ and FED/ under ``root``; returns FED."""
    if not (root / "cohort").exists():
        signal_cohort(root / "cohort", n_patients=n_patients)
    fed = root / ("vfed" if vertical else "fed")
    partition(root / "cohort", fed, hospitals=None if vertical else hospitals,
              vertical=vertical, seed=0)
    return fed


def trained_run(fed: Path, out: Path, **options: Any) -> Path:
    """Train a tiny run with real party processes; returns RUN."""
    train(TrainConfig(fed=str(fed), **{**SMALL, **options}), out)
    return out


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of RUN/ without its checkpoints and evaluation (so each test starts clean)."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    return dest


def read_metrics(run: Path) -> dict[str, Any]:
    """RUN/eval/metrics.json."""
    return json.loads((run / "eval" / "metrics.json").read_text())
