"""What each condition does to what a clinician measures.

Physiology is simulated as hourly latent *channels* (heart rate, creatinine, ...); every
charted vital and lab reads one channel (or a formula of a few, e.g. mean BP, chloride).
A channel's value for a patient at hour ``t`` is

    mean + sex/age terms + between-patient deviation
    + sum of constant effects of the conditions present (chronic, or for the admission)
    + sum of acute effects x shape(t - onset)          (rise, plateau, partial recovery)
    + severity effect x (severity + drift over the stay)
    + AR(1) noise (per-channel persistence; variance raised by e.g. diabetes or afib)

Log-normal channels (labs, urine rate) work on the log scale, so effects there are log
ratios (creatinine +0.7 = x2). Magnitudes follow textbook ICU physiology (KDIGO creatinine
rise for AKI, SIRS criteria for sepsis, hypoalbuminaemia in cirrhosis/malnutrition...) and
are scaled so that a pooled logistic regression on 48-h summaries reaches a macro-AUROC of
about 0.8 (see bench/synth_signal.py and docs/synth.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Channel:
    """A latent hourly physiological quantity (log scale when ``log``)."""

    mean: float
    between: float  # sd between patients
    noise: float  # stationary sd of the within-stay AR(1) process
    phi: float  # hourly AR(1) persistence
    log: bool = False
    male: float = 0.0
    age: float = 0.0  # per 10 years above 65
    severity: float = 0.0  # per sd of acute severity


CHANNELS: dict[str, Channel] = {
    "hr": Channel(84, 9, 5, 0.85, age=-1.5, severity=4.0),
    "sbp": Channel(121, 11, 8, 0.8, age=3, severity=-4.0),
    "dbp": Channel(63, 7, 5, 0.8, age=-2, severity=-2.0),
    "rr": Channel(18.5, 2.5, 2.5, 0.7, severity=1.2),
    "spo2": Channel(97.0, 1.0, 1.2, 0.75, severity=-0.5),
    "temp": Channel(36.9, 0.25, 0.25, 0.9, severity=0.05),
    "gcs": Channel(14.4, 0.7, 0.7, 0.9, severity=-0.6),
    "fio2": Channel(40, 6, 5, 0.9, severity=4.0),
    "glucose": Channel(math.log(125), 0.15, 0.17, 0.6, log=True, severity=0.03),
    "creatinine": Channel(math.log(0.9), 0.22, 0.06, 0.97, log=True, male=0.2, age=0.04,
                          severity=0.05),
    "bun": Channel(math.log(17), 0.3, 0.07, 0.97, log=True, age=0.08, severity=0.05),
    "sodium": Channel(139, 2.5, 1.2, 0.95),
    "potassium": Channel(4.1, 0.3, 0.3, 0.8),
    "bicarbonate": Channel(24.5, 2.2, 1.2, 0.93, severity=-0.6),
    "aniongap": Channel(12.5, 1.8, 1.0, 0.9, severity=0.4),
    "calcium": Channel(8.6, 0.4, 0.25, 0.95),
    "wbc": Channel(math.log(9.0), 0.28, 0.1, 0.95, log=True, severity=0.06),
    "platelets": Channel(math.log(215), 0.3, 0.06, 0.98, log=True, severity=-0.04),
    "hemoglobin": Channel(10.9, 1.4, 0.35, 0.95, male=0.9),
    "lactate": Channel(math.log(1.4), 0.25, 0.2, 0.85, log=True, severity=0.12),
    "bilirubin": Channel(math.log(0.6), 0.4, 0.1, 0.97, log=True),
    "albumin": Channel(3.4, 0.4, 0.1, 0.98, severity=-0.08),
    "inr": Channel(math.log(1.15), 0.1, 0.05, 0.95, log=True),
    "ptt": Channel(math.log(30), 0.12, 0.08, 0.9, log=True),
    "alt": Channel(math.log(24), 0.45, 0.12, 0.95, log=True),
    "ast": Channel(math.log(30), 0.45, 0.12, 0.95, log=True),
    "urine": Channel(math.log(85), 0.35, 0.35, 0.7, log=True, severity=-0.15),
    "weight": Channel(80, 17, 0.0, 0.0, male=9),
}
CHANNEL_NAMES: tuple[str, ...] = tuple(CHANNELS)


@dataclass(frozen=True)
class Timing:
    """When an acute effect starts (hours from ICU admission) and how it resolves."""

    onset: tuple[float, float]  # uniform range for most patients
    late: tuple[float, float]  # range for the share that develops it later in the stay
    late_share: float
    rise: float  # hours of the logistic rise
    duration: tuple[float, float]  # hours from onset to the middle of recovery
    recovery: tuple[float, float]  # fraction of the effect that resolves


@dataclass(frozen=True)
class Effect:
    """A condition's constant and acute effects, as {channel: delta} (log ratio for log channels).

    Acute deltas may be ``(delta, lag_hours)`` for channels that respond later (creatinine).
    ``acute_share`` is the share of patients with the condition who show the acute part.
    """

    constant: Mapping[str, float] = field(default_factory=dict)
    acute: Mapping[str, float | tuple[float, float]] = field(default_factory=dict)
    timing: Timing | None = None
    acute_share: float = 1.0
    noise_scale: Mapping[str, float] = field(default_factory=dict)


_EARLY = Timing((-10, 3), (3, 60), 0.3, 3, (18, 48), (0.4, 0.9))

EFFECTS: dict[str, Effect] = {
    "heart_failure": Effect(
        constant={"hr": 2, "sbp": -3, "rr": 1, "spo2": -0.5, "bun": 0.15, "creatinine": 0.08,
                  "sodium": -1.0, "hemoglobin": -0.4, "weight": 4, "albumin": -0.05,
                  "urine": 0.15},
        acute={"rr": 3, "spo2": -1.5, "hr": 6, "sbp": 6, "fio2": 6},
        timing=Timing((-12, 0), (0, 24), 0.1, 2, (12, 36), (0.7, 1.0)), acute_share=0.5),
    "respiratory_failure": Effect(
        acute={"spo2": -1.5, "rr": 3, "hr": 4, "fio2": 10, "gcs": -1.2, "bicarbonate": 0.8,
               "lactate": 0.05, "sbp": -3},
        timing=Timing((-8, 4), (4, 60), 0.25, 2, (24, 72), (0.3, 0.9))),
    "sepsis": Effect(
        acute={"temp": 0.5, "hr": 7, "sbp": -7, "dbp": -3.5, "rr": 2, "wbc": 0.22,
               "lactate": 0.25, "platelets": (-0.15, 6), "bicarbonate": -1.8, "aniongap": 1.5,
               "creatinine": (0.08, 6), "bilirubin": (0.15, 6), "albumin": -0.2,
               "glucose": 0.06, "gcs": -0.6, "urine": -0.2, "inr": 0.05},
        timing=_EARLY),
    "aki": Effect(  # KDIGO: creatinine rising over the first 48 h, urine output falling first
        acute={"creatinine": (0.5, 8), "bun": (0.35, 8), "potassium": (0.3, 6),
               "bicarbonate": -1.2, "aniongap": 1.0, "urine": -0.5, "calcium": -0.1},
        timing=Timing((-12, 20), (20, 40), 0.2, 10, (36, 72), (0.1, 0.5))),
    "malnutrition": Effect(
        constant={"albumin": -0.3, "weight": -7, "hemoglobin": -0.3, "calcium": -0.15,
                  "bun": -0.1, "creatinine": -0.08}),
    "pneumonia": Effect(
        acute={"temp": 0.35, "wbc": 0.15, "rr": 2, "spo2": -1.0, "fio2": 4, "hr": 3},
        timing=Timing((-24, 0), (0, 48), 0.1, 4, (36, 72), (0.4, 0.9))),
    "uti": Effect(
        acute={"temp": 0.3, "wbc": 0.12, "hr": 2},
        timing=Timing((-24, 0), (0, 48), 0.15, 4, (24, 48), (0.5, 1.0))),
    "diabetes": Effect(
        constant={"glucose": 0.2, "weight": 5, "creatinine": 0.04, "aniongap": 0.3},
        acute={"glucose": 0.7, "bicarbonate": -7, "aniongap": 7, "potassium": 0.7,
               "urine": 0.2},
        timing=Timing((-6, 0), (0, 24), 0.1, 1, (12, 24), (0.8, 1.0)), acute_share=0.1,
        noise_scale={"glucose": 1.3}),
    "hypertension": Effect(
        constant={"sbp": 8, "dbp": 4, "hr": 1, "creatinine": 0.03, "weight": 3},
        acute={"sbp": 25, "dbp": 10},
        timing=Timing((-4, 0), (0, 24), 0.2, 1, (6, 18), (0.7, 1.0)), acute_share=0.12),
    "ckd": Effect(
        constant={"creatinine": 0.6, "bun": 0.35, "hemoglobin": -0.6, "potassium": 0.2,
                  "bicarbonate": -1.0, "aniongap": 0.6, "calcium": -0.15, "urine": -0.15}),
    "liver_disease": Effect(
        constant={"bilirubin": 0.45, "inr": 0.12, "albumin": -0.3, "platelets": -0.2,
                  "alt": 0.2, "ast": 0.3, "sodium": -1.5, "hemoglobin": -0.5, "sbp": -4,
                  "gcs": -0.3, "lactate": 0.06, "ptt": 0.05}),
    "neurological": Effect(
        constant={"gcs": -1.8, "hr": -1},
        acute={"gcs": -3, "hr": 10, "lactate": 0.3, "temp": 0.2},
        timing=Timing((-6, 6), (6, 40), 0.4, 0.5, (4, 12), (0.8, 1.0)), acute_share=0.3),
    "stroke_tbi": Effect(
        acute={"gcs": -3.5, "sbp": 12, "hr": -3},
        timing=Timing((-12, 0), (0, 24), 0.05, 1, (48, 120), (0.0, 0.4))),
    "copd": Effect(constant={"spo2": -1.5, "bicarbonate": 3.0, "rr": 2, "fio2": 5}),
    "afib": Effect(constant={"hr": 10}, noise_scale={"hr": 2.0}),
    "gi_bleed": Effect(
        acute={"hemoglobin": -2.2, "hr": 10, "sbp": -10, "bun": 0.45, "lactate": 0.2},
        timing=Timing((-12, 0), (0, 24), 0.05, 2, (12, 36), (0.3, 0.7))),
    "dehydration": Effect(  # pre-renal: high on arrival, falling with fluids
        acute={"creatinine": 0.45, "bun": 0.45, "urine": -0.5, "hr": 6, "sbp": -6,
               "sodium": 2.5, "hemoglobin": 0.6, "albumin": 0.15},
        timing=Timing((-30, -8), (-8, 0), 0.2, 4, (8, 20), (0.8, 1.0))),
    "cardiac_surgery": Effect(
        constant={"hemoglobin": -1.8, "platelets": -0.2},
        acute={"temp": -1.3, "lactate": 0.55, "glucose": 0.35, "hr": 6, "sbp": -8,
               "wbc": 0.25, "spo2": -1},
        timing=Timing((-3, -1), (-3, -1), 0.0, 0.5, (6, 16), (0.8, 1.0))),
}


def acute_delta(value: float | tuple[float, float]) -> tuple[float, float]:
    """(delta, lag hours) of an acute effect entry."""
    return value if isinstance(value, tuple) else (value, 0.0)
