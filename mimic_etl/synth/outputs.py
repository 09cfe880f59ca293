"""icu/outputevents: urine output (Foley hourly, or voids every few hours) and chest tubes.

Volumes integrate the latent urine rate (oliguria in AKI/sepsis, more output on diuretics).
Quirks: a catheter removed mid-stay (Foley then Void), rows just outside the stay, zero and
impossible volumes, exact duplicate rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from crypten_fl.mimic_etl.synth import clinical, frames
from crypten_fl.mimic_etl.synth.cohort import Cohort
from crypten_fl.mimic_etl.synth.physiology import Physiology
from crypten_fl.mimic_etl.synth.stays import StayContext, icu_event_ids
from crypten_fl.mimic_etl.synth.times import HOUR, renewal_times, to_minute

FOLEY, VOID, CONDOM, STRAIGHT, CHEST1, CHEST2 = 226559, 226560, 226561, 226567, 226588, 226589


def outputevents(rng: np.random.Generator, c: Cohort, ph: Physiology,
                 s: StayContext) -> pl.DataFrame:
    """All outputevents rows of the chunk, sorted by stay then charttime."""
    removed = s.foley & (rng.random(s.n) < 0.3)
    foley_end = np.where(removed, s.intime + (s.outtime - s.intime) * rng.uniform(0.5, 0.9, s.n),
                         s.outtime + 0.5 * HOUR)
    parts = []
    # Foley: hourly on the hour, a few missed hours
    stay, t, gap = renewal_times(rng, s.intime, foley_end, np.full(s.n, HOUR), shape=40.0)
    keep = s.foley[stay] & (rng.random(len(t)) < 0.92)
    parts.append((stay[keep], (t[keep] // HOUR) * HOUR, gap[keep], FOLEY))
    # voiding (or condom catheter) every few hours when no catheter
    void_start = np.where(s.foley, foley_end, s.intime)
    stay, t, gap = renewal_times(rng, void_start, s.outtime, np.full(s.n, 4 * HOUR))
    condom = rng.random(s.n) < 0.05
    item = np.where(condom[stay], CONDOM, VOID)
    parts += [(stay[item == k], t[item == k], gap[item == k], k) for k in (VOID, CONDOM)]
    # chest tubes after cardiac surgery: first 24-48 h
    surgery = c.a_has[s.adm, clinical.CONDITIONS.index("cardiac_surgery")]
    tube_end = np.where(surgery, s.intime + rng.uniform(24, 48, s.n) * HOUR, s.intime)
    for item_id, p in ((CHEST1, 1.0), (CHEST2, 0.5)):
        stay, t, gap = renewal_times(rng, s.intime, tube_end, np.full(s.n, 2 * HOUR))
        keep = rng.random(s.n)[stay] < p
        parts.append((stay[keep], t[keep], gap[keep], item_id))

    stay = np.concatenate([p[0] for p in parts])
    t = to_minute(np.concatenate([p[1] for p in parts]))
    gap_h = np.concatenate([p[2] for p in parts]) / HOUR
    item = np.concatenate([np.full(len(p[0]), p[3], np.int32) for p in parts])
    h = (t - c.a_admit[s.adm[stay]]) / HOUR
    rate = np.exp(ph.at("urine", s.adm[stay], h) + rng.normal(0, 0.25, len(t)))
    since = np.clip((t - s.intime[stay]) / HOUR, 0, None)
    tube = 120 * np.exp(-since / 12) + 15
    volume = np.where(np.isin(item, (CHEST1, CHEST2)), tube * gap_h, rate * gap_h)
    volume = np.round(np.clip(volume, 0, 3000) / 5) * 5
    volume = np.where(rng.random(len(t)) < 0.01, 0.0, volume)
    volume = np.where(rng.random(len(t)) < 0.0005, rng.choice([9999.0, 30000.0], len(t)), volume)
    t = t + np.where(rng.random(len(t)) < 0.005, rng.choice([-1, 1], len(t)) * 2 * HOUR, 0)

    dup = np.nonzero(rng.random(len(t)) < 0.003)[0]
    rows = np.concatenate([np.arange(len(t)), dup])
    rows = rows[frames.owner_time_order(stay[rows], t[rows])]
    stay, t, item, volume = stay[rows], t[rows], item[rows], volume[rows]
    return frames.frame({
        **icu_event_ids(c, s, stay, t),
        "charttime": frames.timestamps(t),
        "storetime": frames.timestamps(t + rng.integers(1, 60, len(t)) * 60),
        "itemid": item,
        "value": volume,
        "valueuom": frames.categories(np.zeros(len(t), np.int32), ["ml"]),
    })
