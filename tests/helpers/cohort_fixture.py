"""Build a small COHORT/ directory exactly in the format of docs/data-contracts.md.

The builder is the reference input for the partition tests: labels, care units, intimes and
patients with several stays are all controllable, and the returned `CohortFixture` holds the
arrays that the files encode so that tests can compare outputs value by value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

LABEL_NAMES: tuple[str, ...] = (
    "heart_failure",
    "respiratory_failure",
    "sepsis",
    "aki",
    "malnutrition",
    "pneumonia",
    "uti",
    "diabetes",
    "hypertension",
    "ckd",
    "liver_disease",
    "neurological",
)

# (name, unit, group, source) in column order
DEFAULT_FEATURES: tuple[tuple[str, str, str, str], ...] = (
    ("heart_rate", "bpm", "vitals", "chartevents"),
    ("sbp", "mmHg", "vitals", "chartevents"),
    ("creatinine", "mg/dL", "labs", "labevents"),
    ("lactate", "mmol/L", "labs", "labevents"),
    ("vasopressor", "flag", "meds", "prescriptions"),
    ("urine_output", "mL", "urine", "outputevents"),
)

CARE_UNITS: tuple[str, ...] = (
    "Medical Intensive Care Unit (MICU)",
    "Surgical Intensive Care Unit (SICU)",
    "Coronary Care Unit (CCU)",
    "Cardiac Vascular Intensive Care Unit (CVICU)",
    "Neuro Intermediate",
)

STATIC_COLUMNS: tuple[str, ...] = (
    "stay_id",
    "subject_id",
    "hadm_id",
    "intime",
    "los_hours",
    "age",
    "sex",
    "race_group",
    "admission_type",
    "insurance",
    "first_careunit",
    "anchor_year_group",
    "weight_kg",
)
#: the static columns a hospital manifest lists (identifiers and intime excluded)
STATIC_FEATURES: list[str] = [c for c in STATIC_COLUMNS
                              if c not in ("stay_id", "subject_id", "hadm_id", "intime")]


@dataclass(frozen=True)
class CohortFixture:
    """What was written: one entry per stay, in stay_id order (the order of the files)."""

    path: Path
    stay_ids: np.ndarray  # (N,) int64, sorted
    subject_ids: np.ndarray  # (N,) int64
    careunits: list[str]  # (N,)
    labels: np.ndarray  # (N, 12) int8
    values: np.ndarray  # (N, T, F) float32, NaN where not observed
    mask: np.ndarray  # (N, T, F) uint8
    features: list[dict[str, str]]
    n_bins: int
    bin_hours: float

    def row_of(self, stay_id: int) -> int:
        """Index of a stay in the arrays above."""
        return int(np.flatnonzero(self.stay_ids == stay_id)[0])


def write_cohort(
    path: Path,
    subject_ids: Sequence[int],
    careunits: Sequence[str],
    labels: np.ndarray,
    *,
    stay_ids: Sequence[int] | None = None,
    intimes: Sequence[datetime] | None = None,
    features: Sequence[tuple[str, str, str, str]] = DEFAULT_FEATURES,
    n_bins: int = 4,
    bin_hours: float = 2.0,
    observed: float = 0.7,
    seed: int = 0,
) -> CohortFixture:
    """Write COHORT/ files for the given stays (one entry per stay in every sequence).

    Args:
        path: directory to create (must not exist or be empty).
        subject_ids: patient of each stay; repeat an id to give a patient several stays.
        careunits: first_careunit of each stay.
        labels: (N, 12) 0/1 matrix, one row per stay.
        stay_ids: stay ids (default 30000001, 30000002, ...); need not be sorted.
        intimes: ICU admission time of each stay (default: one day apart in list order).
        features: (name, unit, group, source) per time-series feature.
        n_bins, bin_hours: the time grid.
        observed: probability that a (bin, feature) cell is observed.
        seed: seed of the random values and observation pattern.
    """
    n = len(subject_ids)
    labels = np.asarray(labels, dtype=np.int8).reshape(n, len(LABEL_NAMES))
    sids = np.asarray(stay_ids if stay_ids is not None else 30_000_001 + np.arange(n), np.int64)
    start = datetime(2150, 1, 1)
    times = list(intimes) if intimes is not None else [start + timedelta(days=i) for i in range(n)]
    order = np.argsort(sids, kind="stable")
    rng = np.random.default_rng(seed)
    n_feat = len(features)
    mask = (rng.random((n, n_bins, n_feat)) < observed).astype(np.uint8)
    values = rng.normal(50.0, 20.0, (n, n_bins, n_feat)).astype(np.float32)
    values[mask == 0] = np.nan

    fx = CohortFixture(
        path=Path(path),
        stay_ids=sids[order],
        subject_ids=np.asarray(subject_ids, np.int64)[order],
        careunits=[careunits[i] for i in order],
        labels=labels[order],
        values=values[order],
        mask=mask[order],
        features=[{"name": f, "unit": u, "group": g, "source": s} for f, u, g, s in features],
        n_bins=n_bins,
        bin_hours=bin_hours,
    )
    fx.path.mkdir(parents=True, exist_ok=True)
    _write_static(fx, [times[i] for i in order], rng)
    _write_labels(fx)
    _write_timeseries(fx)
    _write_manifest(fx, seed)
    return fx


def random_cohort(
    path: Path,
    n_patients: int = 40,
    max_stays: int = 3,
    units: Sequence[str] = CARE_UNITS[:3],
    seed: int = 0,
    **kwargs: object,
) -> CohortFixture:
    """Random cohort: 1..max_stays stays and one care unit per patient, unit-skewed labels."""
    rng = np.random.default_rng(seed)
    stays_per = rng.integers(1, max_stays + 1, n_patients)
    subjects = np.repeat(10_000_001 + np.arange(n_patients), stays_per)
    unit_of_patient = rng.integers(0, len(units), n_patients)
    unit_idx = np.repeat(unit_of_patient, stays_per)
    base = np.linspace(0.1, 0.6, len(LABEL_NAMES))
    boost = np.zeros((len(units), len(LABEL_NAMES)))
    for u in range(len(units)):
        boost[u, (3 * u) % len(LABEL_NAMES) : (3 * u) % len(LABEL_NAMES) + 3] = 0.3
    prob = np.clip(base[None, :] + boost[unit_idx], 0.0, 0.95)
    labels = (rng.random(prob.shape) < prob).astype(np.int8)
    return write_cohort(
        path, subjects.tolist(), [units[u] for u in unit_idx], labels, seed=seed, **kwargs
    )


def _write_static(fx: CohortFixture, intimes: list[datetime], rng: np.random.Generator) -> None:
    n = len(fx.stay_ids)
    weight = rng.normal(80.0, 15.0, n)
    frame = pl.DataFrame(
        {
            "stay_id": pl.Series(fx.stay_ids, dtype=pl.Int64),
            "subject_id": pl.Series(fx.subject_ids, dtype=pl.Int64),
            "hadm_id": pl.Series(20_000_000 + fx.stay_ids % 1_000_000, dtype=pl.Int64),
            "intime": pl.Series(intimes, dtype=pl.Datetime("us")),
            "los_hours": pl.Series(rng.uniform(12.0, 200.0, n), dtype=pl.Float64),
            "age": pl.Series(rng.uniform(18.0, 90.0, n).round(), dtype=pl.Float64),
            "sex": rng.choice(["M", "F"], n).tolist(),
            "race_group": rng.choice(["white", "black", "hispanic", "asian"], n).tolist(),
            "admission_type": rng.choice(["EW EMER.", "ELECTIVE", "URGENT"], n).tolist(),
            "insurance": rng.choice(["Medicare", "Medicaid", "Other"], n).tolist(),
            "first_careunit": fx.careunits,
            "anchor_year_group": rng.choice(["2008 - 2010", "2017 - 2019"], n).tolist(),
            "weight_kg": pl.Series(np.where(rng.random(n) < 0.2, np.nan, weight)).fill_nan(None),
        }
    )
    assert frame.columns == list(STATIC_COLUMNS)
    frame.write_parquet(fx.path / "static.parquet")


def _write_labels(fx: CohortFixture) -> None:
    frame = pl.DataFrame(
        {"stay_id": fx.stay_ids, "subject_id": fx.subject_ids}
        | {name: pl.Series(fx.labels[:, j], dtype=pl.Int8) for j, name in enumerate(LABEL_NAMES)}
    )
    frame.write_parquet(fx.path / "labels.parquet")


def _write_timeseries(fx: CohortFixture) -> None:
    n, t, _ = fx.values.shape
    columns: dict[str, pl.Series] = {
        "stay_id": pl.Series(np.repeat(fx.stay_ids, t), dtype=pl.Int64),
        "bin": pl.Series(np.tile(np.arange(t), n), dtype=pl.Int16),
    }
    for j, feat in enumerate(fx.features):
        col = pl.Series(fx.values[:, :, j].reshape(-1), dtype=pl.Float32).fill_nan(None)
        columns[feat["name"]] = col
        columns[feat["name"] + "_mask"] = pl.Series(fx.mask[:, :, j].reshape(-1), dtype=pl.UInt8)
    pl.DataFrame(columns).write_parquet(fx.path / "timeseries.parquet")


def _write_manifest(fx: CohortFixture, seed: int) -> None:
    n = len(fx.stay_ids)
    hours = fx.n_bins * fx.bin_hours
    manifest = {
        "tool": "crypten-fl",
        "version": "0.1.0",
        "command": "extract",
        "created_utc": "2150-01-01T00:00:00+00:00",
        "python": "3.11",
        "parameters": {"hours": hours, "bin_hours": fx.bin_hours},
        "seed": seed,
        "inputs": [],
        "counts": {"stays": n, "patients": len(np.unique(fx.subject_ids))},
        "features": fx.features,
        "labels": [
            {
                "name": name,
                "prevalence": float(fx.labels[:, j].mean()) if n else 0.0,
                "positives": int(fx.labels[:, j].sum()),
            }
            for j, name in enumerate(LABEL_NAMES)
        ],
        "static": [c for c in STATIC_COLUMNS if c not in ("stay_id", "subject_id", "hadm_id")],
        "n_bins": fx.n_bins,
        "bin_hours": fx.bin_hours,
        "hours": hours,
        "elapsed_seconds": 0.0,
    }
    (fx.path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    flow = [{"step": "icu_stays", "description": "all ICU stays", "remaining": n, "removed": 0}]
    (fx.path / "cohort_flow.json").write_text(json.dumps(flow, indent=2))
