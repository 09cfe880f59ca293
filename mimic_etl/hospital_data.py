"""Read one hospital's split of FED/ (written by ``crypten-fl partition``) as numpy arrays.

A hospital process opens only its own FED/hospital_<k>/ directory: this module reads nothing else.
Every file is checked against docs/data-contracts.md; a mismatch is a one-line UserError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json
from crypten_fl.mimic_etl.partition.cohort import NUMERIC_STATIC, TEXT_STATIC
from crypten_fl.mimic_etl.partition.files import read_parquet, require_dtypes
from crypten_fl.mimic_etl.partition.splits import SPLIT_NAMES
from crypten_fl.mimic_etl.partition.tensors import MASK_COLUMN, VALUES_COLUMN, column_to_array

KEY_COLUMN = "key"


@dataclass(frozen=True)
class HospitalSplit:
    """One split of one hospital; row i of every array is the same ICU stay."""

    split: str
    keys: np.ndarray  # (N,) str record keys (stay ids, or vertical pseudonyms)
    subject_ids: np.ndarray | None  # (N,) int64; None in vertical files
    values: np.ndarray  # (N, T, F) float32, NaN where not observed
    mask: np.ndarray  # (N, T, F) uint8, 1 where observed
    static: pl.DataFrame  # the static columns (may have no columns)
    labels: np.ndarray | None  # (N, L) int8 0/1; None for a vertical party without labels
    feature_names: list[str]
    label_names: list[str]
    manifest: dict[str, Any]

    @property
    def static_columns(self) -> list[str]:
        """Names of the static columns."""
        return self.static.columns

    def __len__(self) -> int:
        return len(self.keys)


def read_hospital_manifest(hospital_dir: Path) -> dict[str, Any]:
    """The hospital's manifest.json, checked for the fields the reader relies on."""
    hospital_dir = Path(hospital_dir)
    if not hospital_dir.is_dir():
        raise UserError(f"{hospital_dir}: hospital directory not found")
    path = hospital_dir / "manifest.json"
    manifest = read_json(path)

    def bad(what: str) -> UserError:
        return UserError(f"{path}: malformed hospital manifest: {what}")

    if not isinstance(manifest, dict):
        raise bad("expected a JSON object")
    features = manifest.get("features")
    if not isinstance(features, list) or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) for f in features
    ):
        raise bad("'features' must be a list of records with a 'name'")
    for field in ("labels", "static"):
        value = manifest.get(field)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"'{field}' must be a list of names")
    n_bins = manifest.get("n_bins")
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise bad("'n_bins' must be a positive integer")
    if not isinstance(manifest.get("vertical"), bool):
        raise bad("'vertical' must be true or false")
    return manifest


def load_split(hospital_dir: Path, split: str) -> HospitalSplit:
    """Load ``split`` (train, val or test) of one hospital directory.

    Args:
        hospital_dir: FED/hospital_<k>.
        split: ``train``, ``val`` or ``test``.

    Returns:
        Arrays in the order of the file's rows, features in the manifest's order.
    """
    if split not in SPLIT_NAMES:
        raise UserError(f"split {split!r}: expected one of {', '.join(SPLIT_NAMES)}")
    manifest = read_hospital_manifest(hospital_dir)
    path = Path(hospital_dir) / f"{split}.parquet"
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    feature_names = [f["name"] for f in manifest["features"]]
    label_names: list[str] = manifest["labels"]
    static_names: list[str] = manifest["static"]
    id_columns = [] if manifest["vertical"] else ["subject_id"]
    wanted = [KEY_COLUMN, *id_columns, *static_names, *label_names, VALUES_COLUMN, MASK_COLUMN]
    frame = read_parquet(path, wanted, hint=" (see manifest.json)")
    require_dtypes(frame, path, numeric=[c for c in NUMERIC_STATIC if c in static_names],
                   text=[c for c in TEXT_STATIC if c in static_names])
    shape = (manifest["n_bins"], len(feature_names))
    expected_rows = (manifest.get("counts") or {}).get(split)
    if isinstance(expected_rows, int) and expected_rows != frame.height:
        raise UserError(f"{path}: {frame.height} rows, manifest.json says {expected_rows}")
    if frame[KEY_COLUMN].null_count():
        raise UserError(f"{path}: column {KEY_COLUMN} has NULL values")
    return HospitalSplit(
        split=split,
        keys=frame[KEY_COLUMN].cast(pl.String).to_numpy().astype(object),
        subject_ids=frame["subject_id"].to_numpy() if id_columns else None,
        values=column_to_array(frame[VALUES_COLUMN], np.float32, shape, path),
        mask=column_to_array(frame[MASK_COLUMN], np.uint8, shape, path),
        static=frame.select(static_names),
        labels=_labels(frame, label_names, path),
        feature_names=feature_names,
        label_names=label_names,
        manifest=manifest,
    )


def _labels(frame: pl.DataFrame, names: list[str], path: Path) -> np.ndarray | None:
    if not names:
        return None
    labels = frame.select(names)
    if any(labels.null_count().row(0)):
        raise UserError(f"{path}: label columns have NULL values")
    matrix = labels.to_numpy()
    if matrix.size and not np.isin(matrix, (0, 1)).all():
        raise UserError(f"{path}: label columns must hold only 0/1")
    return matrix.astype(np.int8).reshape(frame.height, len(names))
