"""What `partition` returns and records in partition.json: per-hospital counts and prevalence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HospitalSummary:
    """Counts of one hospital (or vertical party) of the federation."""

    hospital: int
    stays: int
    patients: int
    split_stays: dict[str, int]
    split_patients: dict[str, int]
    prevalence: dict[str, float] | None  # label -> share of positive stays; None without labels
    js_divergence: float | None  # this hospital's JS divergence from the pooled prevalence
    n_features: int
    label_party: bool
    groups: list[str] | None = None  # vertical: the party's feature groups
    missing_stays: int = 0  # vertical: stays this party lacks (for PSI)


@dataclass(frozen=True)
class PartitionSummary:
    """The result of a partition run (also written to FED/partition.json)."""

    out: Path
    scheme: str
    vertical: bool
    seed: int
    parameters: dict[str, Any]
    hospitals: list[HospitalSummary]
    pooled_prevalence: dict[str, float]
    mean_js_divergence: float
    min_patients_per_hospital: int | None
    elapsed_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        """Stays and patients over the whole federation (label party / all hospitals)."""
        if self.vertical:
            ref = next(h for h in self.hospitals if h.label_party)
            return {"stays": ref.stays, "patients": ref.patients, **ref.split_stays}
        totals = {
            "stays": sum(h.stays for h in self.hospitals),
            "patients": sum(h.patients for h in self.hospitals),
        }
        for name in self.hospitals[0].split_stays:
            totals[name] = sum(h.split_stays[name] for h in self.hospitals)
        return totals

    def most_varying_labels(self, n: int = 3) -> list[str]:
        """The ``n`` labels whose prevalence differs most across hospitals (then label order)."""
        rows = [h.prevalence for h in self.hospitals if h.prevalence is not None]
        names = list(self.pooled_prevalence)
        if not rows:
            return names[:n]
        spread = np.ptp(np.array([[r[name] for name in names] for r in rows]), axis=0)
        order = np.argsort(-spread, kind="stable")[:n]
        return [names[i] for i in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (partition.json without the common manifest header)."""
        return {
            "scheme": self.scheme,
            "vertical": self.vertical,
            "hospitals": len(self.hospitals),
            "min_patients_per_hospital": self.min_patients_per_hospital,
            "totals": self.totals,
            "pooled_prevalence": self.pooled_prevalence,
            "mean_js_divergence": self.mean_js_divergence,
            "per_hospital": [asdict(h) for h in self.hospitals],
            **self.extra,
        }
