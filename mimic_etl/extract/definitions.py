"""The output features and labels, read from sql/features.csv and sql/labels.csv.

The SQL reads the same files for itemids, ranges and ICD prefixes; Python needs only the column
order and metadata (manifest.json) and the column lists that fill the ``{{ ... }}`` placeholders
of timeseries.sql and labels.sql.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl import sql

FEATURE_GROUPS: tuple[str, ...] = ("vitals", "labs", "urine", "meds")
FLAG_GROUPS: frozenset[str] = frozenset({"meds"})
# The sql/ relation holding each group's long (stay_id, bin, feature, value) rows.
GROUP_RELATIONS: dict[str, str] = {
    "vitals": "vitals", "labs": "labs", "urine": "urine", "meds": "medications",
}
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")  # feature and label names become column names


@dataclass(frozen=True)
class Feature:
    """One time-varying output feature (a value column and a ``_mask`` column)."""

    name: str
    group: str
    unit: str
    source: str

    def as_dict(self) -> dict[str, str]:
        """The manifest entry: name, unit, group, source."""
        return {"name": self.name, "unit": self.unit, "group": self.group, "source": self.source}


def load_features(path: Path = sql.DATA_FILES["features_csv"]) -> list[Feature]:
    """Features in file order (first row of each feature), with their itemids as ``source``."""
    rows: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["feature"], []).append(row)
    features = []
    for name, items in rows.items():
        first = items[0]
        _check_identifier(path, name)
        if first["group"] not in FEATURE_GROUPS:
            raise ValueError(f"{path}: feature {name} has unknown group {first['group']!r}")
        itemids = [r["itemid"] for r in items if r["itemid"]]
        detail = ", ".join(itemids) if itemids else "drug name, sql/drug_classes.csv"
        source = f"{first['source']} ({detail})"
        features.append(Feature(name, first["group"], first["unit"], source))
    return features


def load_labels(path: Path = sql.DATA_FILES["labels_csv"]) -> list[str]:
    """Label names in file order (the column order of labels.parquet)."""
    with path.open(newline="", encoding="utf-8") as handle:
        names = [row["label"] for row in csv.DictReader(handle)]
    for name in names:
        _check_identifier(path, name)
    return names


def _check_identifier(path: Path, name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{path}: {name!r} is not a valid column name (lower case, digits, _)")


def template_values(features: list[Feature], labels: list[str]) -> dict[str, str]:
    """SQL for the placeholders of timeseries.sql and labels.sql (see their headers)."""
    sep = ",\n    "
    joins, columns = [], []
    for f in features:
        cells = f"{f.name}_cells"
        joins.append(
            f"LEFT JOIN (SELECT stay_id, bin, value FROM {GROUP_RELATIONS[f.group]} "
            f"WHERE feature = '{f.name}') AS {cells}\n"
            f"    ON {cells}.stay_id = g.stay_id AND {cells}.bin = g.bin"
        )
        if f.group in FLAG_GROUPS:
            columns.append(f"CAST(coalesce({cells}.value, 0) AS FLOAT) AS {f.name}")
            columns.append(f"CAST(1 AS UTINYINT) AS {f.name}_mask")
        else:
            columns.append(f"CAST({cells}.value AS FLOAT) AS {f.name}")
            columns.append(f"CAST({cells}.value IS NOT NULL AS UTINYINT) AS {f.name}_mask")
    label_columns = [
        f"CAST(coalesce(max(CAST(m.label = '{name}' AS TINYINT)), 0) AS TINYINT) AS {name}"
        for name in labels
    ]
    return {
        "feature_joins": "\n".join(joins),
        "feature_columns": sep.join(columns),
        "label_columns": sep.join(label_columns),
    }


def _short_hash(obj: object) -> str:
    """First 16 hex digits of the SHA-256 of ``obj``'s canonical JSON."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _rows(path: Path, key: str, ignore: tuple[str, ...] = ()) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            kept = {k: v.strip() for k, v in row.items() if k not in (key, *ignore)}
            rows.setdefault(row[key], []).append(kept)
    return rows


def definition_hashes(
    features_csv: Path = sql.DATA_FILES["features_csv"],
    labels_csv: Path = sql.DATA_FILES["labels_csv"],
    drug_classes_csv: Path = sql.DATA_FILES["drug_classes_csv"],
    sql_dir: Path = sql.SQL_DIR,
) -> dict[str, Any]:
    """What each output column means, as short hashes (the ``definitions`` of manifest.json).

    ``features``: per feature, its rows of features.csv (group, unit, itemids, valid range,
    conversion; not the descriptive ``item_label`` and ``reference``) and, for medication
    flags, its drug patterns; ``labels``: per label, its ICD-9 and ICD-10 prefixes; ``sql``: the
    code of every sql/*.sql file (comments and blank space left out). Hospitals whose cohorts
    agree on these hashes extracted the same columns the same way (mimic_etl/schema.py).
    """
    described = ("item_label", "reference")
    drugs = _rows(drug_classes_csv, "feature", ("source",))
    features = {name: _short_hash({"rows": rows, "drugs": drugs.get(name, [])})
                for name, rows in _rows(features_csv, "feature", described).items()}
    labels = {name: _short_hash(rows) for name, rows in _rows(labels_csv, "label",
                                                               ("source",)).items()}
    return {"features": features, "labels": labels, "sql": _sql_hash(sql_dir)}


def _sql_hash(folder: Path) -> str:
    """Short hash of the code of every .sql file in ``folder`` (comments and spacing left out)."""
    return _short_hash({f.name: " ".join(sql.without_comments(f.text).split())
                        for f in sql.load(folder)})


def mapping_hash(mapping: Path) -> str:
    """Short hash of a MEDS mapping folder: its SQL code and the ``relation``, ``kind`` and
    ``pattern`` of every codes.csv row (not the descriptions)."""
    with (mapping / "codes.csv").open(newline="", encoding="utf-8") as handle:
        codes = [[row.get(k, "").strip() for k in ("relation", "kind", "pattern")]
                 for row in csv.DictReader(handle)]
    return _short_hash({"sql": _sql_hash(mapping), "codes": codes})


def source_definitions(meds_mapping: Path | None) -> dict[str, str]:
    """What the input adds to the definitions: ``{"meds_mapping": hash}`` for a MEDS mapping
    other than the default one, else nothing.

    The default mapping turns the official MIMIC-IV→MEDS codes back into the MIMIC-IV tables,
    and its cohort equals the CSV path's (tests/test_extract_meds.py), so a site extracting CSVs
    and one extracting MEDS with the default mapping share one schema. A custom mapping decides
    which local codes become which feature, so the members must all use the same one (a mapping
    may list the codes of several sources).
    """
    if meds_mapping is None:
        return {}
    found = mapping_hash(meds_mapping)
    return {} if found == mapping_hash(sql.SQL_DIR / "meds") else {"meds_mapping": found}
