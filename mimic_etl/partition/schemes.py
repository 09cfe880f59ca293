"""Horizontal partition schemes: pure functions assigning every patient to one hospital.

Each scheme has the signature ``(patients, hospitals, alpha, rng) -> (P,) hospital index`` and is
registered in `SCHEMES`. Schemes with a random size per hospital top small hospitals up to
`min_hospital_size` patients so that no simulated hospital is empty.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.partition.patients import PatientTable
from crypten_fl.mimic_etl.partition.splits import apportion

SchemeFn = Callable[[PatientTable, int, float, np.random.Generator], np.ndarray]

MIN_PATIENTS_PER_HOSPITAL = 10


def min_hospital_size(n_patients: int, hospitals: int) -> int:
    """Guaranteed minimum: `MIN_PATIENTS_PER_HOSPITAL`, or ``n_patients // hospitals`` if less."""
    return max(1, min(MIN_PATIENTS_PER_HOSPITAL, n_patients // hospitals))


def top_up(
    assignment: np.ndarray, hospitals: int, minimum: int, rng: np.random.Generator
) -> np.ndarray:
    """Move random patients from the largest hospital into each hospital below ``minimum``.

    Requires ``minimum * hospitals <= len(assignment)``; donors never fall below ``minimum``.
    """
    out = assignment.copy()
    sizes = np.bincount(out, minlength=hospitals)
    for k in range(hospitals):
        while sizes[k] < minimum:
            donor = int(np.argmax(sizes))
            take = min(minimum - sizes[k], sizes[donor] - minimum)
            chosen = rng.choice(np.flatnonzero(out == donor), size=take, replace=False)
            out[chosen] = k
            sizes[donor] -= take
            sizes[k] += take
    return out


def assign_iid(
    patients: PatientTable, hospitals: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """Uniformly random patients, equal hospital sizes (±1); ``alpha`` is unused."""
    out = np.empty(patients.n_patients, dtype=np.int64)
    out[rng.permutation(patients.n_patients)] = np.arange(patients.n_patients) % hospitals
    return out


def assign_dirichlet(
    patients: PatientTable, hospitals: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """Label skew: per label class, hospital shares drawn from Dirichlet(alpha, …, alpha).

    The class of a patient is their rarest positive label (`rarest_positive_label`); small alpha
    concentrates each class in few hospitals, large alpha tends to IID.
    """
    out = np.empty(patients.n_patients, dtype=np.int64)
    for label_class in np.unique(patients.label_class):
        members = rng.permutation(np.flatnonzero(patients.label_class == label_class))
        shares = rng.dirichlet(np.full(hospitals, alpha))
        out[members] = np.repeat(np.arange(hospitals), apportion(len(members), shares))
    return top_up(out, hospitals, min_hospital_size(patients.n_patients, hospitals), rng)


def assign_quantity(
    patients: PatientTable, hospitals: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """Quantity skew: hospital sizes from Dirichlet(alpha, …, alpha), IID content."""
    sizes = apportion(patients.n_patients, rng.dirichlet(np.full(hospitals, alpha)))
    out = np.empty(patients.n_patients, dtype=np.int64)
    out[rng.permutation(patients.n_patients)] = np.repeat(np.arange(hospitals), sizes)
    return top_up(out, hospitals, min_hospital_size(patients.n_patients, hospitals), rng)


def assign_careunit(
    patients: PatientTable, hospitals: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """Natural split: whole care units per hospital (a patient follows their first stay's unit).

    Units are taken largest first (ties by name) and each goes to the hospital with the fewest
    patients so far (ties: lowest index). Deterministic; ``alpha`` and ``rng`` are unused.
    """
    units, unit_of_patient, counts = np.unique(
        patients.first_careunit, return_inverse=True, return_counts=True
    )
    if hospitals > len(units):
        raise UserError(
            f"--hospitals {hospitals}: scheme careunit needs at most one hospital per care unit "
            f"and the cohort has {len(units)}"
        )
    hospital_of_unit = careunit_mapping(units.tolist(), counts.tolist(), hospitals)
    return np.array([hospital_of_unit[u] for u in units], dtype=np.int64)[unit_of_patient]


def careunit_mapping(units: list[str], counts: list[int], hospitals: int) -> dict[str, int]:
    """Greedy balanced mapping of care units (with patient counts) onto hospitals."""
    load = [0] * hospitals
    mapping: dict[str, int] = {}
    for count, unit in sorted(zip(counts, units, strict=True), key=lambda cu: (-cu[0], cu[1])):
        k = min(range(hospitals), key=lambda h: (load[h], h))
        mapping[unit] = k
        load[k] += count
    return mapping


SCHEMES: dict[str, SchemeFn] = {
    "iid": assign_iid,
    "dirichlet": assign_dirichlet,
    "careunit": assign_careunit,
    "quantity": assign_quantity,
}
