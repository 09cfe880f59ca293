"""What an extraction produced: counts, label prevalence, cohort flow, and manifest.json."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from crypten_fl import sql
from crypten_fl.mimic_etl.extract.definitions import FEATURE_GROUPS, Feature

STATIC_COLUMNS: tuple[str, ...] = (
    "stay_id", "subject_id", "hadm_id", "intime", "los_hours", "age", "sex", "race_group",
    "admission_type", "insurance", "first_careunit", "anchor_year_group", "weight_kg",
)


@dataclass(frozen=True)
class FlowStep:
    """One cohort criterion: stays remaining after it and stays it removed."""

    step: str
    description: str
    remaining: int
    removed: int


@dataclass(frozen=True)
class LabelCount:
    """Positives and prevalence of one label over the cohort's stays."""

    name: str
    positives: int
    prevalence: float


@dataclass(frozen=True)
class ExtractSummary:
    """The result of :func:`mimic_etl.extract.extract` (also written to manifest.json)."""

    out: Path
    stays: int
    patients: int
    admissions: int
    timeseries_rows: int
    hours: int
    bin_hours: int
    n_bins: int
    features_by_group: dict[str, int]
    labels: list[LabelCount]
    cohort_flow: list[FlowStep]
    step_seconds: dict[str, float] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)  # MEDS input: what the mapping left out

    def overview(self) -> dict[str, Any]:
        """The summary table's content: cohort size, grid, features per group, prevalence."""
        return {
            "stays": self.stays,
            "patients": self.patients,
            "admissions": self.admissions,
            "bins_per_stay": self.n_bins,
            "bin_hours": self.bin_hours,
            "timeseries_rows": self.timeseries_rows,
            "features": sum(self.features_by_group.values()),
            "features_by_group": dict(self.features_by_group),
            "label_prevalence": {lab.name: lab.prevalence for lab in self.labels},
        }


def read_flow(con: duckdb.DuckDBPyConnection) -> list[FlowStep]:
    """The cohort_flow relation built by sql/cohort_flow.sql, in step order."""
    rows = con.execute(
        "SELECT step, description, remaining, removed FROM cohort_flow ORDER BY step_order"
    ).fetchall()
    return [FlowStep(str(s), str(d), int(r), int(x)) for s, d, r, x in rows]


def summarize(
    out_dir: Path,
    features: list[Feature],
    labels: list[str],
    flow: list[FlowStep],
    grid: tuple[int, int, int],
) -> ExtractSummary:
    """Count what was written to ``out_dir`` (parquet files) into an ExtractSummary.

    ``grid`` is ``(hours, bin_hours, n_bins)``.
    """
    con = duckdb.connect()
    static = sql.literal(str(out_dir / "static.parquet"))
    stays, patients, admissions = con.execute(
        f"SELECT count(*), count(DISTINCT subject_id), count(DISTINCT hadm_id) "
        f"FROM read_parquet({static})"
    ).fetchall()[0]
    series = sql.literal(str(out_dir / "timeseries.parquet"))
    (rows,) = con.execute(f"SELECT count(*) FROM read_parquet({series})").fetchall()[0]
    label_file = sql.literal(str(out_dir / "labels.parquet"))
    sums = ", ".join(f"coalesce(sum({name}), 0)" for name in labels)
    positives = con.execute(f"SELECT {sums} FROM read_parquet({label_file})").fetchall()[0]
    counts = [
        LabelCount(name, int(p), round(int(p) / stays, 6) if stays else 0.0)
        for name, p in zip(labels, positives, strict=True)
    ]
    groups = Counter(f.group for f in features)
    hours, bin_hours, n_bins = grid
    return ExtractSummary(
        out=out_dir,
        stays=int(stays),
        patients=int(patients),
        admissions=int(admissions),
        timeseries_rows=int(rows),
        hours=hours,
        bin_hours=bin_hours,
        n_bins=n_bins,
        features_by_group={g: groups.get(g, 0) for g in FEATURE_GROUPS},
        labels=counts,
        cohort_flow=flow,
    )


def manifest_fields(summary: ExtractSummary, features: list[Feature]) -> dict[str, Any]:
    """The extract-specific fields of manifest.json (added to ``base_manifest``)."""
    return {
        "counts": {
            "stays": summary.stays,
            "patients": summary.patients,
            "admissions": summary.admissions,
            "timeseries_rows": summary.timeseries_rows,
            "features": len(features),
        },
        "features": [f.as_dict() for f in features],
        "labels": [
            {"name": lab.name, "prevalence": lab.prevalence, "positives": lab.positives}
            for lab in summary.labels
        ],
        "static": list(STATIC_COLUMNS),
        "n_bins": summary.n_bins,
        "bin_hours": summary.bin_hours,
        "hours": summary.hours,
        "summary": summary.overview(),
        "cohort_flow": [asdict(step) for step in summary.cohort_flow],
        "step_seconds": summary.step_seconds,
        "elapsed_seconds": summary.elapsed_seconds,
    }
