"""Patient-level view of a cohort: the unit that partition schemes and splits assign.

Splits are by patient (subject_id), never by stay, so every scheme works on this table and the
stays simply follow their patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class PatientTable:
    """One entry per patient (sorted by subject_id), plus the patient of every stay."""

    subject_ids: np.ndarray  # (P,) int64, sorted, unique
    stay_patient: np.ndarray  # (N,) index into subject_ids of each stay
    first_careunit: np.ndarray  # (P,) str: first_careunit of the patient's first stay (by intime)
    label_class: np.ndarray  # (P,) int: rarest positive label (index), or L if none positive
    n_labels: int

    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return len(self.subject_ids)


def build_patient_table(static: pl.DataFrame, labels: np.ndarray) -> PatientTable:
    """Group stays by patient.

    Args:
        static: one row per stay with subject_id, stay_id, intime, first_careunit.
        labels: (N, L) 0/1 stay labels aligned with ``static``.
    """
    subject_ids, stay_patient = np.unique(static["subject_id"].to_numpy(), return_inverse=True)
    intime = static["intime"].cast(pl.Int64).to_numpy()
    first = _first_stay_of_patient(stay_patient, intime, static["stay_id"].to_numpy())
    units = static["first_careunit"].fill_null("unknown").to_numpy().astype(str)
    return PatientTable(
        subject_ids=subject_ids,
        stay_patient=stay_patient,
        first_careunit=units[first],
        label_class=rarest_positive_label(labels, stay_patient, len(subject_ids)),
        n_labels=labels.shape[1],
    )


def _first_stay_of_patient(
    stay_patient: np.ndarray, intime: np.ndarray, stay_ids: np.ndarray
) -> np.ndarray:
    """Index of each patient's earliest stay (ties broken by the smaller stay_id)."""
    order = np.lexsort((stay_ids, intime, stay_patient))
    starts = np.flatnonzero(np.r_[True, np.diff(stay_patient[order]) != 0])
    return order[starts]


def rarest_positive_label(
    labels: np.ndarray, stay_patient: np.ndarray, n_patients: int
) -> np.ndarray:
    """The class used by the Dirichlet label-skew scheme for multi-label patients.

    A patient is positive for a label if any of their stays is. Their class is the positive label
    with the lowest stay-level prevalence in the cohort (ties: label order), so rare labels are not
    swamped by common ones; patients with no positive label form one extra class ``L``.
    """
    n_labels = labels.shape[1]
    positive = np.zeros((n_patients, n_labels), dtype=bool)
    np.logical_or.at(positive, stay_patient, labels.astype(bool))
    rank = np.argsort(labels.mean(axis=0) if len(labels) else np.zeros(n_labels), kind="stable")
    ranked = positive[:, rank]
    return np.where(ranked.any(axis=1), rank[ranked.argmax(axis=1)], n_labels)
