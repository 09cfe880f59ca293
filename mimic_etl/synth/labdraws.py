"""When blood is drawn: every 4-24 h in the ICU, about daily on the ward, once in the ED
before admission (no hadm_id yet), and at outpatient visits over the years (no hadm_id)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crypten_fl.mimic_etl.synth.cohort import Cohort
from crypten_fl.mimic_etl.synth.times import DAY, HOUR, YEAR, renewal_times, to_minute

ICU, WARD, ED, CLINIC = 0, 1, 2, 3
OUTPATIENT_VISITS = (64.0, 21.0)  # mean outpatient draws per ICU / non-ICU patient


@dataclass
class Draws:
    """One row per blood draw: patient, admission (-1 outpatient), time (s), kind."""

    patient: np.ndarray
    adm: np.ndarray
    time: np.ndarray
    kind: np.ndarray

    @staticmethod
    def concat(parts: list[Draws]) -> Draws:
        """All parts, in order."""
        return Draws(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in ("patient", "adm", "time", "kind")))


def schedule(rng: np.random.Generator, c: Cohort) -> Draws:
    """All draws of the chunk (unsorted)."""
    return Draws.concat([_icu(rng, c), _ward(rng, c), _ed(rng, c), _clinic(rng, c)])


def _icu(rng: np.random.Generator, c: Cohort) -> Draws:
    interval = np.clip(7.5 - 1.5 * c.a_severity[c.s_adm], 4.0, 12.0) * HOUR
    stay, t, _ = renewal_times(rng, c.s_in - HOUR, c.s_out, interval)
    adm = c.s_adm[stay]
    return Draws(c.a_patient[adm], adm, to_minute(t), np.full(len(adm), ICU))


def _ward(rng: np.random.Generator, c: Cohort) -> Draws:
    days = np.ceil((c.a_disch - c.a_admit) / DAY).astype(np.int64) + 1
    adm = np.repeat(np.arange(len(c.a_patient)), days)
    d = np.arange(len(adm)) - np.repeat(np.cumsum(days) - days, days)
    morning = (c.a_admit[adm] // DAY + d) * DAY + rng.uniform(3.5, 7.5, len(adm)) * HOUR
    ok = (morning > c.a_admit[adm]) & (morning < c.a_disch[adm]) & (rng.random(len(adm)) < 0.85)
    ok &= ~_inside_stay(c, adm, morning)  # ICU mornings follow the ICU schedule
    return Draws(c.a_patient[adm[ok]], adm[ok], to_minute(morning[ok]), np.full(ok.sum(), WARD))


def _inside_stay(c: Cohort, adm: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether time ``t`` of admission ``adm`` falls inside one of its ICU stays."""
    inside = np.zeros(len(adm), dtype=bool)
    per_adm = np.bincount(c.s_adm, minlength=len(c.a_patient))
    first = np.cumsum(per_adm) - per_adm
    for j in range(int(per_adm.max(initial=0))):
        has = per_adm[adm] > j
        k = np.where(has, first[adm] + j, 0)
        inside |= has & (t >= c.s_in[k]) & (t <= c.s_out[k])
    return inside


def _ed(rng: np.random.Generator, c: Cohort) -> Draws:
    adm = np.nonzero(c.a_ed)[0]
    t = c.a_admit[adm] - rng.uniform(0.5, 6, len(adm)) * HOUR
    return Draws(c.a_patient[adm], np.full(len(adm), -1), to_minute(t), np.full(len(adm), ED))


def _clinic(rng: np.random.Generator, c: Cohort) -> Draws:
    n = c.n_patients
    count = rng.poisson(np.where(c.p_icu, *OUTPATIENT_VISITS))
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.zeros(n, dtype=np.int64)
    np.minimum.at(lo, c.a_patient, c.a_admit)
    np.maximum.at(hi, c.a_patient, c.a_disch)
    lo = lo - 2 * YEAR
    hi = np.where(c.p_dod >= 0, np.maximum(np.minimum(hi + 2 * YEAR, c.p_dod), hi), hi + 2 * YEAR)
    patient = np.repeat(np.arange(n), count)
    t = lo[patient] + rng.random(len(patient)) * (hi - lo)[patient]
    t = (t // DAY) * DAY + rng.uniform(8, 17, len(t)) * HOUR
    return Draws(patient, np.full(len(patient), -1), to_minute(t), np.full(len(patient), CLINIC))
