"""Read and validate an extracted cohort directory (COHORT/, see docs/data-contracts.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.mimic_etl.partition.files import read_parquet, require_dtypes
from crypten_fl.mimic_etl.partition.tensors import grid_to_arrays

COHORT_FILES = ("manifest.json", "static.parquet", "labels.parquet", "timeseries.parquet")
STATIC_COLUMNS = (
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
# static.parquet columns that identify a stay or its time rather than describe the patient
NON_FEATURE_STATIC = ("stay_id", "subject_id", "hadm_id", "intime")
# numeric static columns (f64, finite where not NULL): training z-scores them
NUMERIC_STATIC = ("los_hours", "age", "weight_kg")
# categorical static columns (str): training one-hot encodes them
TEXT_STATIC = ("sex", "race_group", "admission_type", "insurance", "first_careunit",
               "anchor_year_group")
STATIC_GROUP = "static"


@dataclass(frozen=True)
class Cohort:
    """An extracted cohort in memory, every array aligned with `static` (sorted by stay_id)."""

    path: Path
    manifest: dict[str, Any]
    features: list[dict[str, Any]]  # manifest feature records, in column order
    label_names: list[str]
    static: pl.DataFrame  # one row per stay
    labels: np.ndarray  # (N, L) int8
    values: np.ndarray  # (N, T, F) float32, NaN where the cohort has NULL
    mask: np.ndarray  # (N, T, F) uint8
    n_bins: int
    bin_hours: float

    @property
    def stay_ids(self) -> np.ndarray:
        """(N,) int64 stay ids, sorted."""
        return self.static["stay_id"].to_numpy()

    @property
    def static_columns(self) -> list[str]:
        """Static columns that describe the stay (static.parquet minus ids and intime)."""
        return [c for c in self.static.columns if c not in NON_FEATURE_STATIC]

    @property
    def groups(self) -> list[str]:
        """Feature groups present, in first-appearance order, followed by ``static``."""
        seen = dict.fromkeys(f["group"] for f in self.features)
        return [*seen, STATIC_GROUP]

    def input_files(self) -> list[Path]:
        """The cohort files read."""
        return [self.path / name for name in COHORT_FILES]


def load_cohort(path: Path, progress: ProgressFn = no_progress) -> Cohort:
    """Read COHORT/ and check it against the contract; any violation is a one-line UserError."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"--cohort {path}: directory not found")
    for name in COHORT_FILES:
        if not (path / name).is_file():
            raise UserError(f"--cohort {path}: missing {name} (expected the output of extract)")
    task = "read cohort"
    progress(task, 0, 4)
    manifest = read_json(path / "manifest.json")
    features, label_names, n_bins, bin_hours = _check_manifest(manifest, path / "manifest.json")
    progress(task, 1, 4)
    static = _read_static(path / "static.parquet")
    labels = _read_labels(path / "labels.parquet", static, label_names)
    progress(task, 2, 4)
    names = [f["name"] for f in features]
    ts_path = path / "timeseries.parquet"
    ts = read_parquet(ts_path, ["stay_id", "bin", *names, *(f"{n}_mask" for n in names)])
    require_dtypes(ts, ts_path, integer=["stay_id", "bin"], numeric=ts.columns)
    progress(task, 3, 4)
    values, mask = grid_to_arrays(ts, static["stay_id"].to_numpy(), names, n_bins, ts_path)
    progress(task, 4, 4)
    return Cohort(
        path=path,
        manifest=manifest,
        features=features,
        label_names=label_names,
        static=static,
        labels=labels,
        values=values,
        mask=mask,
        n_bins=n_bins,
        bin_hours=bin_hours,
    )


def _check_manifest(
    manifest: Any, path: Path
) -> tuple[list[dict[str, Any]], list[str], int, float]:
    def bad(what: str) -> UserError:
        return UserError(f"{path}: malformed manifest: {what}")

    if not isinstance(manifest, dict):
        raise bad("expected a JSON object")
    features = manifest.get("features")
    if not isinstance(features, list) or not features:
        raise bad("'features' must be a non-empty list")
    for feat in features:
        if not (isinstance(feat, dict) and isinstance(feat.get("name"), str)):
            raise bad("every entry of 'features' needs a string 'name'")
        group = feat.get("group")
        if not isinstance(group, str) or not group or group == STATIC_GROUP:
            raise bad(f"feature {feat['name']!r} has no valid 'group' (vitals/labs/meds/urine)")
    names = [f["name"] for f in features]
    if len(set(names)) != len(names):
        raise bad("feature names are not unique")
    labels = manifest.get("labels")
    if not isinstance(labels, list) or not labels:
        raise bad("'labels' must be a non-empty list")
    if not all(isinstance(lab, dict) and isinstance(lab.get("name"), str) for lab in labels):
        raise bad("every entry of 'labels' needs a string 'name'")
    if not isinstance(manifest.get("static"), list):
        raise bad("'static' must be a list of column names")
    n_bins, bin_hours = manifest.get("n_bins"), manifest.get("bin_hours")
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise bad("'n_bins' must be a positive integer")
    if not isinstance(bin_hours, int | float) or isinstance(bin_hours, bool) or bin_hours <= 0:
        raise bad("'bin_hours' must be a positive number")
    return features, [lab["name"] for lab in labels], n_bins, float(bin_hours)


def _read_static(path: Path) -> pl.DataFrame:
    static = read_parquet(path)
    missing = [c for c in STATIC_COLUMNS if c not in static.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    require_dtypes(static, path, integer=["stay_id", "subject_id"], temporal=["intime"],
                   numeric=NUMERIC_STATIC, text=TEXT_STATIC)
    for col in ("stay_id", "subject_id", "intime"):
        if static[col].null_count():
            raise UserError(f"{path}: column {col} has NULL values")
    for col in NUMERIC_STATIC:
        bad = static.select((~pl.col(col).cast(pl.Float64).is_finite()).sum()).item()
        if bad:
            raise UserError(f"{path}: column {col} has {bad} NaN or infinite value(s)")
    if static["stay_id"].n_unique() != static.height:
        raise UserError(f"{path}: stay_id is not unique")
    if static.height == 0:
        raise UserError(f"{path}: the cohort has no stays")
    return static.sort("stay_id")


def _read_labels(path: Path, static: pl.DataFrame, label_names: list[str]) -> np.ndarray:
    labels = read_parquet(path, ["stay_id", "subject_id", *label_names])
    if labels.height != static.height or labels["stay_id"].n_unique() != labels.height:
        raise UserError(
            f"{path}: {labels.height} rows, expected one per stay of static.parquet "
            f"({static.height})"
        )
    require_dtypes(labels, path, integer=["stay_id", "subject_id"], numeric=label_names)
    labels = labels.sort("stay_id")
    if not labels["stay_id"].equals(static["stay_id"]):
        raise UserError(f"{path}: stay ids differ from those of static.parquet")
    if not labels["subject_id"].equals(static["subject_id"]):
        raise UserError(f"{path}: subject_id differs from static.parquet for some stays")
    matrix = labels.select(label_names).to_numpy()
    if np.isnan(matrix.astype(np.float64)).any() or not np.isin(matrix, (0, 1)).all():
        raise UserError(f"{path}: label columns must hold only 0/1 (no NULL)")
    return matrix.astype(np.int8)
