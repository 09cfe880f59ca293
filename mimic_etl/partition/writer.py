"""Write one hospital directory of FED/: {train,val,test}.parquet and manifest.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from crypten_fl.common.manifest import write_json
from crypten_fl.common.writing import write_parquet
from crypten_fl.mimic_etl.partition.cohort import Cohort
from crypten_fl.mimic_etl.partition.measures import prevalence
from crypten_fl.mimic_etl.partition.splits import SPLIT_NAMES
from crypten_fl.mimic_etl.partition.summary import HospitalSummary
from crypten_fl.mimic_etl.partition.tensors import tensor_columns
from crypten_fl.mimic_etl.schema import cohort_extras, schema_fields

KEY_COLUMN = "key"
IDENTIFIER_COLUMNS = ("subject_id", "stay_id", "hadm_id")


@dataclass(frozen=True)
class HospitalView:
    """Which columns one hospital (or vertical party) holds."""

    index: int
    feature_idx: np.ndarray  # cohort feature columns held, in cohort order
    static_columns: list[str]
    identifiers: bool  # horizontal: subject_id, stay_id and hadm_id columns
    labels: bool
    groups: tuple[str, ...] | None = None  # vertical party's feature groups


def split_frame(
    cohort: Cohort, view: HospitalView, rows: np.ndarray, keys: np.ndarray
) -> pl.DataFrame:
    """The split file's rows (in the order of ``rows``), columns as in the FED/ contract."""
    columns: list[pl.Series] = [pl.Series(KEY_COLUMN, keys[rows], dtype=pl.String)]
    picked = cohort.static[rows]
    if view.identifiers:
        columns += [picked[c] for c in IDENTIFIER_COLUMNS]
    columns += [picked[c] for c in view.static_columns]
    if view.labels:
        columns += [
            pl.Series(name, cohort.labels[rows, j], dtype=pl.Int8)
            for j, name in enumerate(cohort.label_names)
        ]
    values, mask = cohort.values[rows], cohort.mask[rows]
    if len(view.feature_idx) != len(cohort.features):
        values, mask = values[:, :, view.feature_idx], mask[:, :, view.feature_idx]
    columns += tensor_columns(values, mask)
    return pl.DataFrame(columns)


def write_hospital(
    hospital_dir: Path,
    cohort: Cohort,
    view: HospitalView,
    split_rows: dict[str, np.ndarray],
    keys: np.ndarray,
    header: dict[str, Any],
    missing_stays: int = 0,
) -> HospitalSummary:
    """Write a hospital's split files and manifest.json; return its counts.

    The manifest ends with the hospital's schema description and fingerprint
    (mimic_etl/schema.py), compared between hospitals before training.

    Args:
        hospital_dir: FED/hospital_<k> (created unless it is an empty directory).
        cohort: the cohort the rows index.
        view: the columns this hospital holds.
        split_rows: cohort row indices per split name, in file order.
        keys: (N,) record key of every cohort stay.
        header: common manifest fields (tool, version, parameters, seed, ...).
        missing_stays: vertical non-label party: stays left out on purpose.
    """
    hospital_dir.mkdir(parents=True, exist_ok=True)
    patient_of_row = cohort.static["subject_id"].to_numpy()
    for name in SPLIT_NAMES:
        frame = split_frame(cohort, view, split_rows[name], keys)
        write_parquet(frame, hospital_dir / f"{name}.parquet")
    all_rows = np.concatenate([split_rows[n] for n in SPLIT_NAMES])
    prev = {n: _prevalence_dict(cohort, split_rows[n]) for n in SPLIT_NAMES} if view.labels else {}
    features = [cohort.features[j] for j in view.feature_idx]
    counts = {n: len(split_rows[n]) for n in SPLIT_NAMES}
    manifest = {
        **header,
        "hospital": view.index,
        "vertical": view.groups is not None,
        "label_party": view.labels,
        "groups": list(view.groups) if view.groups is not None else None,
        "key": "str(stay_id)" if view.identifiers else "hmac-sha256(federation secret, stay_id)",
        "features": features,
        "labels": list(cohort.label_names) if view.labels else [],
        "static": view.static_columns,
        "n_bins": cohort.n_bins,
        "bin_hours": cohort.bin_hours,
        "counts": counts,
        "prevalence": prev,
    }
    manifest |= schema_fields(manifest, cohort_extras(cohort.manifest))
    write_json(hospital_dir / "manifest.json", manifest)
    return HospitalSummary(
        hospital=view.index,
        stays=len(all_rows),
        patients=len(np.unique(patient_of_row[all_rows])),
        split_stays=counts,
        split_patients={n: len(np.unique(patient_of_row[split_rows[n]])) for n in SPLIT_NAMES},
        prevalence=_prevalence_dict(cohort, all_rows) if view.labels else None,
        js_divergence=None,
        n_features=len(features),
        label_party=view.labels,
        groups=list(view.groups) if view.groups is not None else None,
        missing_stays=missing_stays,
    )


def _prevalence_dict(cohort: Cohort, rows: np.ndarray) -> dict[str, float | None]:
    prev = prevalence(cohort.labels[rows])
    return {
        name: (None if np.isnan(p) else round(float(p), 6))
        for name, p in zip(cohort.label_names, prev, strict=True)
    }
