"""Charted vital signs, GCS, glucose, FiO2 and weight: the target chartevents rows.

Nurses chart a *round* about every hour (on the hour for most), with gaps, often another at
half past (more often in sicker patients), extra rounds every 15-20 min during the first hours
and while vasopressors start, and the odd round just before ICU admission or after discharge.
Each round charts a subset of items; values read the latent physiology (physiology.py) plus
measurement noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from crypten_fl.mimic_etl.synth.cohort import Cohort
from crypten_fl.mimic_etl.synth.physiology import Physiology
from crypten_fl.mimic_etl.synth.stays import StayContext
from crypten_fl.mimic_etl.synth.times import HOUR

EYE = ("No Response", "To Pain", "To Speech", "Spontaneously")
VERBAL = ("No Response", "Incomprehensible sounds", "Inappropriate Words", "Confused",
          "Oriented", "No Response-ETT")
MOTOR = ("No response", "Abnormal extension", "Abnormal Flexion", "Flex-withdraws",
         "Localizes Pain", "Obeys Commands")
GCS_TEXTS: tuple[str, ...] = EYE + VERBAL + MOTOR
_VERBAL0, _MOTOR0, _ETT = len(EYE), len(EYE) + len(VERBAL), len(EYE) + len(VERBAL) - 1


@dataclass
class EventRows:
    """Chart rows before formatting: stay index, time (s), itemid, valuenum, text index."""

    stay: np.ndarray
    time: np.ndarray
    item: np.ndarray
    num: np.ndarray
    text: np.ndarray

    @staticmethod
    def of(stay: np.ndarray, time: np.ndarray, itemid: int, num: np.ndarray,
           text: np.ndarray | None = None) -> EventRows:
        """Rows of one itemid."""
        n = len(stay)
        return EventRows(stay, time, np.full(n, itemid, np.int32), num,
                         np.full(n, -1, np.int32) if text is None else text)

    @staticmethod
    def concat(parts: list[EventRows]) -> EventRows:
        """All parts, in order."""
        return EventRows(*(np.concatenate([getattr(p, f) for p in parts])
                           for f in ("stay", "time", "item", "num", "text")))


def charting_rounds(rng: np.random.Generator, s: StayContext) -> tuple[np.ndarray, np.ndarray]:
    """(stay index, time in seconds) of every charting round."""
    first = -(-s.intime // HOUR) * HOUR
    count = (s.outtime - first) // HOUR + 1
    stay = np.repeat(np.arange(s.n), count)
    k = np.arange(len(stay)) - np.repeat(np.cumsum(count) - count, count)
    t = first[stay] + k * HOUR
    off_hour = rng.random(len(t)) < 0.35
    t = t + off_hour * (rng.integers(-20, 21, len(t)) * 60)
    keep = rng.random(len(t)) > s.gap_rate[stay]
    half = (rng.random(len(t)) < s.half_hour_rate[stay]) & (t + 1800 < s.outtime[stay])
    parts_s, parts_t = [stay[keep], stay[half]], [t[keep], t[half] + 1800]
    # extra rounds: every 20 min in the first 3 h, every 15 min for 4 h after vasopressors start
    for base, hours, step in ((s.intime, 3, 20), (s.pressor_start, 4, 15)):
        ok = base > 0
        n_extra = hours * 60 // step
        ex_stay = np.repeat(np.nonzero(ok)[0], n_extra)
        ex_k = np.tile(np.arange(1, n_extra + 1), int(ok.sum()))
        ex_t = base[ex_stay] + ex_k * step * 60
        inside = (ex_t < s.outtime[ex_stay]) & (rng.random(len(ex_t)) < 0.8)
        parts_s.append(ex_stay[inside])
        parts_t.append(ex_t[inside])
    pre = rng.random(s.n) < 0.12
    post = rng.random(s.n) < 0.08
    parts_s += [np.nonzero(pre)[0], np.nonzero(post)[0]]
    parts_t += [s.intime[pre] - rng.integers(5, 120, pre.sum()) * 60,
                s.outtime[post] + rng.integers(5, 90, post.sum()) * 60]
    return np.concatenate(parts_s), np.concatenate(parts_t)


def vital_rows(rng: np.random.Generator, c: Cohort, ph: Physiology, s: StayContext) -> EventRows:
    """All target chartevents rows of the chunk's stays."""
    r_stay, r_t = charting_rounds(rng, s)
    adm = s.adm[r_stay]
    h = (r_t - c.a_admit[adm]) / HOUR
    vent = (h >= c.a_vent[adm, 0]) & (h <= c.a_vent[adm, 1])
    n = len(r_stay)

    def at(ch: str, sd: float) -> np.ndarray:
        return ph.at(ch, adm, h) + rng.normal(0.0, sd, n)

    def pick(p: np.ndarray | float) -> np.ndarray:
        return rng.random(n) < p

    parts: list[EventRows] = []

    def add(mask: np.ndarray, itemid: int, num: np.ndarray,
            text: np.ndarray | None = None) -> None:
        parts.append(EventRows.of(r_stay[mask], r_t[mask], itemid, num[mask],
                                  None if text is None else text[mask]))

    add(pick(0.97), 220045, np.clip(np.round(at("hr", 2)), 25, 230))
    sbp = at("sbp", 4)
    dbp = np.minimum(at("dbp", 3), sbp - 15)
    mbp = (sbp + 2 * dbp) / 3 + rng.normal(0, 1.5, n)
    art = s.art[r_stay]
    for ids, mask, shift in (((220179, 220180, 220181), pick(np.where(art, 0.3, 0.92)), 0.0),
                             ((220050, 220051, 220052), art & pick(0.92), 4.0)):
        for itemid, v in zip(ids, (sbp + shift, dbp - shift / 2, mbp), strict=True):
            add(mask, itemid, np.clip(np.round(v), 20, 300))
    rr = np.clip(np.round(at("rr", 1.5)), 4, 60)
    rr_mask = pick(0.93)
    add(rr_mask & ~vent, 220210, rr)
    add(rr_mask & vent, 224690, rr)
    add(pick(0.95), 220277, np.clip(np.round(at("spo2", 0.8)), 60, 100))
    temp_c = at("temp", 0.1)
    temp = pick(0.25)
    mode = s.temp_mode[r_stay]
    add(temp & (mode != 1), 223761, np.round(temp_c * 1.8 + 32, 1))
    add(temp & (mode != 0), 223762, np.round(temp_c, 1))
    _gcs(rng, add, at("gcs", 0.5), vent, pick(s.gcs_rate[r_stay]))
    glucose = np.clip(np.round(np.exp(at("glucose", 0.06))), 20, 1500)
    add(pick(s.fingerstick_rate[r_stay]), 225664, glucose)
    add(pick(0.03), 220621, glucose)
    add(pick(np.where(vent, 0.6, 0.02)), 223835,
        np.clip(np.round(at("fio2", 2) / 5) * 5, 21, 100))
    weighed = rng.random(s.n) < 0.9
    w_stay = np.nonzero(weighed)[0]
    w_t = s.intime[w_stay] + rng.integers(0, 180, len(w_stay)) * 60
    weight = ph.at("weight", s.adm[w_stay], (w_t - c.a_admit[s.adm[w_stay]]) / HOUR)
    parts.append(EventRows.of(w_stay, w_t, 226512,
                              np.round(np.clip(weight + rng.normal(0, 0.5, len(w_stay)), 30, 250),
                                       1)))
    return EventRows.concat(parts)


def _gcs(rng: np.random.Generator, add: Callable[..., None], total: np.ndarray,
         vent: np.ndarray, mask: np.ndarray) -> None:
    """Eye/verbal/motor rows whose sum tracks the latent GCS (verbal 'No Response-ETT' on vent)."""
    deficit = 15 - np.clip(total, 3, 15)
    n = len(total)
    eye = np.clip(np.round(4 - 0.3 * deficit + rng.normal(0, 0.3, n)), 1, 4)
    verbal = np.clip(np.round(5 - 0.37 * deficit + rng.normal(0, 0.3, n)), 1, 5)
    motor = np.clip(np.round(6 - 0.33 * deficit + rng.normal(0, 0.3, n)), 1, 6)
    verbal_text = np.where(vent, _ETT, _VERBAL0 + verbal - 1).astype(np.int32)
    verbal = np.where(vent, 1, verbal)
    add(mask, 220739, eye, (eye - 1).astype(np.int32))
    add(mask, 223900, verbal, verbal_text)
    add(mask, 223901, motor, (_MOTOR0 + motor - 1).astype(np.int32))
