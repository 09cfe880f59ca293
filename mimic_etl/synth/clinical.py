"""Who is ill with what: the 12 labelled conditions, 5 unlabelled drivers, care-unit case-mix.

A liability model: each condition's log-odds is an intercept plus loadings on latent factors
(patient-level ``cardio``, ``liver``, ``frail``; admission-level ``infection``, ``severity``),
log-odds added by parent conditions sampled before it (a DAG: hypertension -> diabetes -> ckd
-> heart failure, pneumonia/uti -> sepsis -> respiratory failure/aki, liver -> malnutrition...),
age and sex terms, and a care-unit offset. Intercepts are solved so that each condition's
share of ICU admissions matches ``Risk.prevalence`` (MIMIC-IV ICU cohorts: hypertension
highest, malnutrition/pneumonia lowest; shared/mimic-iv-reference.md).

Chronic conditions are sampled once per patient (with the unit of the first ICU stay) and
persist across admissions; acute ones are sampled per admission. The unlabelled drivers
(stroke/TBI, COPD, atrial fibrillation, GI bleeding, cardiac surgery, dehydration) shape
physiology and filler diagnoses without being labels, so that e.g. a low GCS is not proof of a
label, and a high creatinine that falls with fluids (dehydration) differs from AKI's rising one
only in its time course.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

LABELS: tuple[str, ...] = (
    "heart_failure", "respiratory_failure", "sepsis", "aki", "malnutrition", "pneumonia",
    "uti", "diabetes", "hypertension", "ckd", "liver_disease", "neurological",
)
EXTRAS: tuple[str, ...] = (
    "stroke_tbi", "copd", "afib", "gi_bleed", "cardiac_surgery", "dehydration",
)
CONDITIONS: tuple[str, ...] = LABELS + EXTRAS
PATIENT_LATENTS: tuple[str, ...] = ("cardio", "liver", "frail")
ADMISSION_LATENTS: tuple[str, ...] = ("infection", "severity")


@dataclass(frozen=True)
class CareUnit:
    """An ICU as named in icustays.first_careunit, its share of stays and case-mix."""

    code: str
    name: str
    share: float
    age_shift: float = 0.0
    severity: float = 0.0
    offsets: Mapping[str, float] = field(default_factory=dict)


# Shares approximate MIMIC-IV first_careunit counts; offsets are log-odds.
CARE_UNITS: tuple[CareUnit, ...] = (
    CareUnit("MICU", "Medical Intensive Care Unit (MICU)", 0.21, 0.0, 0.3, {"dehydration": 0.3,
        "sepsis": 0.9, "pneumonia": 0.7, "respiratory_failure": 0.6, "uti": 0.4,
        "liver_disease": 0.6, "aki": 0.3, "malnutrition": 0.4, "gi_bleed": 0.8, "copd": 0.4,
        "cardiac_surgery": -4.0, "stroke_tbi": -1.5, "neurological": -0.2}),
    CareUnit("MICU/SICU", "Medical/Surgical Intensive Care Unit (MICU/SICU)", 0.17, 0.0, 0.2, {
        "sepsis": 0.5, "pneumonia": 0.3, "respiratory_failure": 0.4, "liver_disease": 0.3,
        "gi_bleed": 0.5, "cardiac_surgery": -3.0, "stroke_tbi": -0.8}),
    CareUnit("CVICU", "Cardiac Vascular Intensive Care Unit (CVICU)", 0.16, 2.0, -0.3, {
        "dehydration": -1.0,
        "cardiac_surgery": 3.2, "heart_failure": 0.5, "hypertension": 0.5, "diabetes": 0.2,
        "afib": 0.6, "sepsis": -1.4, "pneumonia": -0.9, "uti": -0.7, "liver_disease": -0.9,
        "neurological": -0.8, "malnutrition": -0.6, "gi_bleed": -1.0, "stroke_tbi": -1.5}),
    CareUnit("SICU", "Surgical Intensive Care Unit (SICU)", 0.14, -1.0, 0.0, {
        "liver_disease": 0.2, "malnutrition": 0.4, "heart_failure": -0.4, "gi_bleed": 0.3,
        "cardiac_surgery": -2.5, "stroke_tbi": -0.3}),
    CareUnit("CCU", "Coronary Care Unit (CCU)", 0.11, 4.0, 0.1, {
        "heart_failure": 1.4, "hypertension": 0.4, "ckd": 0.3, "diabetes": 0.3, "afib": 0.9,
        "sepsis": -0.5, "pneumonia": -0.3, "liver_disease": -0.5, "neurological": -0.6,
        "stroke_tbi": -1.5, "cardiac_surgery": -2.0}),
    CareUnit("TSICU", "Trauma SICU (TSICU)", 0.12, -12.0, 0.0, {
        "stroke_tbi": 1.8, "neurological": 0.2, "hypertension": -0.6, "diabetes": -0.5,
        "heart_failure": -0.9, "ckd": -0.8, "sepsis": -0.6, "liver_disease": -0.4,
        "cardiac_surgery": -4.0, "respiratory_failure": 0.1}),
    CareUnit("Neuro Intermediate", "Neuro Intermediate", 0.045, 0.0, -0.5, {
        "stroke_tbi": 2.2, "neurological": 1.4, "sepsis": -1.2, "heart_failure": -0.7,
        "pneumonia": -0.3, "aki": -0.6, "liver_disease": -0.6, "cardiac_surgery": -4.0,
        "malnutrition": -0.3}),
    CareUnit("Neuro SICU", "Neuro Surgical Intensive Care Unit (Neuro SICU)", 0.025, -3.0, 0.1, {
        "stroke_tbi": 2.6, "neurological": 1.6, "sepsis": -1.2, "heart_failure": -0.7,
        "pneumonia": -0.3, "aki": -0.6, "liver_disease": -0.6, "cardiac_surgery": -4.0,
        "malnutrition": -0.3}),
    CareUnit("Neuro Stepdown", "Neuro Stepdown", 0.02, 0.0, -0.6, {
        "stroke_tbi": 2.2, "neurological": 1.4, "sepsis": -1.2, "heart_failure": -0.7,
        "pneumonia": -0.3, "aki": -0.6, "liver_disease": -0.6, "cardiac_surgery": -4.0,
        "malnutrition": -0.3}),
)
UNIT_NAMES: tuple[str, ...] = tuple(u.name for u in CARE_UNITS)
NON_ICU_ACUTE_OFFSET = -2.0  # admissions without an ICU stay are far less acutely ill


@dataclass(frozen=True)
class Risk:
    """Log-odds model of one condition (see module docstring)."""

    prevalence: float
    chronic: bool
    latent: Mapping[str, float] = field(default_factory=dict)
    parents: Mapping[str, float] = field(default_factory=dict)
    age: float = 0.0  # per 10 years above 65
    female: float = 0.0


# Insertion order is a topological order of the parent DAG.
RISKS: dict[str, Risk] = {
    "hypertension": Risk(0.60, True, {"cardio": 1.0}, age=0.45),
    "diabetes": Risk(0.31, True, {"cardio": 0.8}, {"hypertension": 0.6}, age=0.1),
    "ckd": Risk(0.20, True, {"cardio": 0.6}, {"hypertension": 0.9, "diabetes": 0.8}, age=0.35),
    "heart_failure": Risk(0.27, True, {"cardio": 0.7},
                          {"hypertension": 0.6, "diabetes": 0.4, "ckd": 0.7}, age=0.4),
    "afib": Risk(0.22, True, {"cardio": 0.4}, {"heart_failure": 1.0, "hypertension": 0.3},
                 age=0.6),
    "copd": Risk(0.13, True, {"frail": 0.4}, age=0.3),
    "liver_disease": Risk(0.12, True, {"liver": 1.6}, age=-0.1),
    "neurological": Risk(0.18, True, {"frail": 0.7}, age=0.1),
    "malnutrition": Risk(0.10, True, {"frail": 0.8, "liver": 0.4},
                         {"liver_disease": 0.7, "ckd": 0.3}, age=0.15),
    "cardiac_surgery": Risk(0.11, False, {}, {"heart_failure": 0.3, "hypertension": 0.3}),
    "stroke_tbi": Risk(0.10, False, {}, {"hypertension": 0.5, "afib": 0.6}, age=0.1),
    "gi_bleed": Risk(0.07, False, {"liver": 0.4}, {"liver_disease": 1.2}),
    "dehydration": Risk(0.12, False, {"severity": 0.2}, {"diabetes": 0.3, "gi_bleed": 0.5},
                        age=0.2),
    "pneumonia": Risk(0.12, False, {"infection": 0.9, "frail": 0.3},
                      {"copd": 0.7, "neurological": 0.4, "stroke_tbi": 0.4}, age=0.15),
    "uti": Risk(0.15, False, {"infection": 0.7, "frail": 0.4},
                {"neurological": 0.4, "diabetes": 0.3}, age=0.2, female=0.8),
    "sepsis": Risk(0.22, False, {"infection": 0.9, "severity": 0.5},
                   {"pneumonia": 1.5, "uti": 1.3, "liver_disease": 0.5, "malnutrition": 0.4}),
    "respiratory_failure": Risk(0.25, False, {"severity": 0.6}, {
        "pneumonia": 1.6, "sepsis": 0.9, "heart_failure": 0.6, "copd": 1.0,
        "neurological": 0.3, "stroke_tbi": 0.5}),
    "aki": Risk(0.33, False, {"severity": 0.5}, {
        "sepsis": 1.2, "ckd": 0.9, "heart_failure": 0.5, "liver_disease": 0.6,
        "cardiac_surgery": 0.3}),
}
CHRONIC: tuple[str, ...] = tuple(c for c, r in RISKS.items() if r.chronic)
ACUTE: tuple[str, ...] = tuple(c for c, r in RISKS.items() if not r.chronic)
_OFFSETS = np.array([[u.offsets.get(c, 0.0) for c in CONDITIONS] for u in CARE_UNITS])


def sample_units(rng: np.random.Generator, n: int) -> np.ndarray:
    """Care-unit index per ICU stay, by the units' shares."""
    shares = np.array([u.share for u in CARE_UNITS])
    return rng.choice(len(CARE_UNITS), size=n, p=shares / shares.sum())


def sample_age(rng: np.random.Generator, unit: np.ndarray) -> np.ndarray:
    """Age in years (18-91, MIMIC caps older patients at 91) given the care unit (-1: none)."""
    shift = np.array([u.age_shift for u in CARE_UNITS] + [-4.0])[unit]
    age = 18 + 78 * rng.beta(3.2, 1.9, size=unit.shape) + shift
    return np.clip(np.round(age), 18, 91)


def sample_latents(
    rng: np.random.Generator, n: int, names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Independent standard-normal latent factors."""
    return {name: rng.standard_normal(n) for name in names}


def severity_shift(unit: np.ndarray) -> np.ndarray:
    """Mean severity of a care unit (-1 = no ICU stay)."""
    return np.array([u.severity for u in CARE_UNITS] + [-1.0])[unit]


def _logit(
    name: str, unit: np.ndarray, age: np.ndarray, female: np.ndarray,
    latents: Mapping[str, np.ndarray], known: Mapping[str, np.ndarray],
) -> np.ndarray:
    risk = RISKS[name]
    z = risk.age * (age - 65.0) / 10.0 + risk.female * female
    for latent, weight in risk.latent.items():
        z = z + weight * latents[latent]
    for parent, weight in risk.parents.items():
        z = z + weight * known[parent]
    offsets = np.vstack([_OFFSETS, np.zeros(len(CONDITIONS))])[:, CONDITIONS.index(name)]
    z = z + offsets[unit]
    if not risk.chronic:
        z = z + np.where(unit < 0, NON_ICU_ACUTE_OFFSET, 0.0)
    return z


def sample_conditions(
    rng: np.random.Generator, names: tuple[str, ...], unit: np.ndarray, age: np.ndarray,
    female: np.ndarray, latents: Mapping[str, np.ndarray], known: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Sample ``names`` in DAG order; ``known`` holds parents already sampled (updated)."""
    intercept = intercepts()
    for name in names:
        p = _sigmoid(intercept[name] + _logit(name, unit, age, female, latents, known))
        known[name] = rng.random(unit.shape) < p
    return known


@functools.cache
def intercepts() -> dict[str, float]:
    """Intercepts giving each condition its target share of ICU admissions (solved once)."""
    rng = np.random.default_rng(20240611)
    n = 100_000
    unit = sample_units(rng, n)
    age = sample_age(rng, unit)
    female = rng.random(n) < 0.44
    latents = sample_latents(rng, n, PATIENT_LATENTS + ADMISSION_LATENTS)
    latents["severity"] = latents["severity"] + severity_shift(unit)
    known: dict[str, np.ndarray] = {}
    solved: dict[str, float] = {}
    for name, risk in RISKS.items():
        z = _logit(name, unit, age, female, latents, known)
        b = 0.0
        for _ in range(12):  # Newton steps on mean(sigmoid(b + z)) = prevalence
            p = _sigmoid(b + z)
            b -= (p.mean() - risk.prevalence) / max(float((p * (1 - p)).mean()), 1e-6)
        solved[name] = float(b)
        known[name] = rng.random(n) < _sigmoid(solved[name] + z)
    return solved


def death_probability(
    severity: np.ndarray, age: np.ndarray, has: Mapping[str, np.ndarray], icu: np.ndarray
) -> np.ndarray:
    """In-hospital mortality (about 11 % of ICU admissions, about 1 % without ICU)."""
    z = (-2.5 + 0.9 * severity + 0.25 * (age - 65) / 10 + 0.7 * has["sepsis"]
         + 0.5 * has["respiratory_failure"] + 0.4 * has["aki"] + 0.4 * has["liver_disease"]
         + 0.5 * has["stroke_tbi"] - 1.0 * has["cardiac_surgery"])
    return _sigmoid(z - np.where(icu, 0.0, 1.5))


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))
