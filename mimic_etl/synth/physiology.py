"""Hourly latent physiology per admission (see effects.py for the model).

The grid is ragged: admission ``a`` owns rows ``start[a] .. start[a] + length[a] - 1`` of every
channel, one per hour from admittime. Measurements read it by linear interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crypten_fl.mimic_etl.synth import clinical
from crypten_fl.mimic_etl.synth.cohort import Cohort
from crypten_fl.mimic_etl.synth.effects import CHANNEL_NAMES, CHANNELS, EFFECTS, acute_delta
from crypten_fl.mimic_etl.synth.times import HOUR
from scipy.signal import lfilter

CH = {name: i for i, name in enumerate(CHANNEL_NAMES)}
CHRONIC_MASK = np.array([c in clinical.CHRONIC for c in clinical.CONDITIONS])


@dataclass
class Physiology:
    """Latent channel values on the hourly grid, plus each patient's outpatient level."""

    start: np.ndarray
    length: np.ndarray
    values: np.ndarray  # (channels, grid rows)
    level: np.ndarray  # (patients, channels): baseline + chronic effects, no acute illness

    def at(self, channel: str, adm: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Latent value of ``channel`` for admissions ``adm`` at ``hours`` after admittime."""
        h = np.clip(hours, 0.0, self.length[adm] - 1.001)
        i = h.astype(np.int64)
        f = h - i
        row = self.values[CH[channel]]
        base = self.start[adm] + i
        return row[base] * (1.0 - f) + row[base + 1] * f


def simulate(rng: np.random.Generator, c: Cohort) -> Physiology:
    """Simulate every admission of the cohort chunk."""
    n_adm = len(c.a_patient)
    length = np.ceil((c.a_disch - c.a_admit) / HOUR).astype(np.int64) + 2
    start = np.cumsum(length) - length
    g_adm = np.repeat(np.arange(n_adm), length)
    g_h = (np.arange(len(g_adm)) - start[g_adm]).astype(np.float64)

    base = _baseline(c)  # (patients, channels)
    first_adm = np.searchsorted(c.a_patient, np.arange(c.n_patients))
    level = base + _constant(c.a_has[first_adm] & CHRONIC_MASK, c.a_gain[first_adm])
    constant = base[c.a_patient] + _constant(c.a_has, c.a_gain)  # (admissions, channels)

    shapes: dict[tuple[int, float], np.ndarray] = {}
    values = np.empty((len(CHANNEL_NAMES), len(g_adm)), dtype=np.float64)
    t_rel = np.clip(g_h - c.a_tref[g_adm], 0.0, 96.0) / 48.0
    severity = c.a_severity[g_adm] + c.a_drift[g_adm] * t_rel
    for name, ch in CHANNELS.items():
        k = CH[name]
        v = constant[g_adm, k] + ch.severity * severity
        for j, cond in enumerate(clinical.CONDITIONS):
            entry = EFFECTS[cond].acute.get(name)
            if entry is None:
                continue
            delta, lag = acute_delta(entry)
            key = (j, lag)
            if key not in shapes:
                shapes[key] = _shape(c, j, g_adm, g_h - lag)
            v += delta * shapes[key]
        if ch.noise > 0:
            v += _ar1(rng, start, length, ch.phi, ch.noise) * _noise_scale(c, name)[g_adm]
        values[k] = v
    return Physiology(start=start, length=length, values=values, level=level)


def _baseline(c: Cohort) -> np.ndarray:
    out = np.empty((c.n_patients, len(CHANNEL_NAMES)))
    for name, ch in CHANNELS.items():
        k = CH[name]
        out[:, k] = (ch.mean + ch.male * ~c.p_female + ch.age * (c.p_age - 65) / 10
                     + ch.between * c.p_z[:, k])
    return out


def _constant(has: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Sum of constant effects (rows: admissions or patients)."""
    out = np.zeros((has.shape[0], len(CHANNEL_NAMES)))
    for j, cond in enumerate(clinical.CONDITIONS):
        for name, delta in EFFECTS[cond].constant.items():
            out[:, CH[name]] += delta * has[:, j] * gain[:, j]
    return out


def _shape(c: Cohort, j: int, g_adm: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Acute effect profile of condition ``j``: logistic rise, then partial recovery."""
    intensity = c.a_acute[g_adm, j]
    on = intensity > 0
    out = np.zeros(len(hours))
    rise = EFFECTS[clinical.CONDITIONS[j]].timing.rise  # type: ignore[union-attr]
    tau = hours[on] - c.a_onset[g_adm[on], j]
    dur = c.a_duration[g_adm[on], j]
    rec = c.a_recovery[g_adm[on], j]
    up = _sigmoid(tau / rise)
    down = 1.0 - rec * _sigmoid((tau - dur) / np.maximum(dur / 4.0, 2.0))
    out[on] = intensity[on] * up * down
    return out


def _noise_scale(c: Cohort, channel: str) -> np.ndarray:
    scale = np.ones(len(c.a_patient))
    for j, cond in enumerate(clinical.CONDITIONS):
        factor = EFFECTS[cond].noise_scale.get(channel)
        if factor is not None:
            scale = np.where(c.a_has[:, j], scale * factor, scale)
    return scale


def _ar1(rng: np.random.Generator, start: np.ndarray, length: np.ndarray, phi: float,
         sd: float) -> np.ndarray:
    """Stationary AR(1) noise, independent per admission, on the ragged grid."""
    total = int(length.sum())
    x = lfilter([1.0], [1.0, -phi], rng.standard_normal(total) * sd * np.sqrt(1 - phi * phi))
    owner = np.repeat(np.arange(len(start)), length)
    j = np.arange(total) - start[owner]
    carried = np.where(start > 0, x[np.maximum(start - 1, 0)], 0.0)[owner]
    initial = rng.standard_normal(len(start))[owner] * sd
    return x + phi ** (j + 1.0) * (initial - carried)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))
