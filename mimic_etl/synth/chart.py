"""icu/chartevents: target vitals plus filler items, with the quirks real charting has.

Quirks (documented in docs/synth.md): rows before intime / after outtime, °F and °C
temperatures, GCS as text with a numeric valuenum, 'No Response-ETT' when ventilated, text
values with NULL valuenum ('___', 'ERROR'), impossible values (HR 999, SpO2 150, a °F
temperature typed without its decimal point), exact duplicate rows, NULL storetime.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from crypten_fl.mimic_etl.synth import frames
from crypten_fl.mimic_etl.synth.cohort import Cohort
from crypten_fl.mimic_etl.synth.items import CHART_FILLER, all_chart_items
from crypten_fl.mimic_etl.synth.physiology import Physiology
from crypten_fl.mimic_etl.synth.stays import StayContext, icu_event_ids
from crypten_fl.mimic_etl.synth.times import HOUR
from crypten_fl.mimic_etl.synth.vitals import GCS_TEXTS, EventRows, vital_rows

QUIRK_TEXTS = ("___", "ERROR")
# scales the filler items' rates so that a stay has ~4,600 chartevents rows, about 20 % of them
# the target vitals, as in MIMIC-IV v3.1 (433 M rows / 94,458 stays)
FILLER_RATE_SCALE = 1.05
_FILLER_OFFSET = np.cumsum([0] + [len(i.options) for i in CHART_FILLER])[:-1] + len(GCS_TEXTS)
CHART_TEXTS: tuple[str, ...] = (
    GCS_TEXTS + tuple(o for i in CHART_FILLER for o in i.options) + QUIRK_TEXTS
)
_QUIRK0 = len(CHART_TEXTS) - len(QUIRK_TEXTS)
_ITEMS = sorted(all_chart_items(), key=lambda i: i.itemid)
_IDS = np.array([i.itemid for i in _ITEMS])
_UNITS = sorted({i.unit for i in _ITEMS if i.unit})
_UNIT_OF = np.array([_UNITS.index(i.unit) if i.unit else -1 for i in _ITEMS])
_LOW = np.array([i.normal[0] if i.normal else -np.inf for i in _ITEMS])
_HIGH = np.array([i.normal[1] if i.normal else np.inf for i in _ITEMS])
# impossible values a bedside monitor or a typing slip produces: itemid -> (rate, values)
OUTLIERS: dict[int, tuple[float, tuple[float, ...]]] = {
    220045: (0.0015, (0.0, 999.0)), 220277: (0.0015, (150.0, 0.0)),
    223761: (0.005, (986.0, 9.8)), 223762: (0.005, (3.7, 370.0)),
    220179: (0.001, (0.0, 450.0)), 220210: (0.001, (99.0, 0.0)),
}


def chartevents(rng: np.random.Generator, c: Cohort, ph: Physiology,
                s: StayContext) -> pl.DataFrame:
    """All chartevents rows of the chunk, sorted by stay then charttime."""
    rows = EventRows.concat([vital_rows(rng, c, ph, s), filler_rows(rng, s)])
    rows = _quirks(rng, rows)
    order = frames.owner_time_order(rows.stay, rows.time)
    stay, t, item = rows.stay[order], rows.time[order], rows.item[order]
    num, text = rows.num[order], rows.text[order]
    pos = np.searchsorted(_IDS, item)
    warning = ((num < _LOW[pos]) | (num > _HIGH[pos])) & (rng.random(len(num)) < 0.3)
    return frames.frame({
        **icu_event_ids(c, s, stay, t),
        "charttime": frames.timestamps(t),
        "storetime": frames.timestamps(t + rng.integers(1, 45, len(t)) * 60,
                                       rng.random(len(t)) < 0.01),
        "itemid": item,
        "value": frames.choose_text(text, CHART_TEXTS, frames.number_strings(num)),
        "valuenum": frames.numbers(num),
        "valueuom": frames.categories(_UNIT_OF[pos], _UNITS),
        "warning": warning.astype(np.int8),
    })


def filler_rows(rng: np.random.Generator, s: StayContext) -> EventRows:
    """Other charted items (alarms, nursing assessments, ventilator settings)."""
    los_h = (s.outtime - s.intime) / HOUR
    parts = []
    for vent in (False, True):
        idx = np.array([k for k, i in enumerate(CHART_FILLER) if i.vent == vent])
        rates = np.array([CHART_FILLER[k].rate for k in idx]) * FILLER_RATE_SCALE
        hours = s.vent_hours if vent else los_h
        count = rng.poisson(hours[:, None] * rates[None, :]).ravel()  # (stay, item) counts
        stay = np.repeat(np.repeat(np.arange(s.n), len(idx)), count)
        which = np.repeat(np.tile(idx, s.n), count)
        if vent:
            t = s.vent_start[stay] + rng.random(len(stay)) * s.vent_hours[stay] * HOUR
        else:
            t = s.intime[stay] + (rng.random(len(stay)) * (los_h[stay] + 1) - 0.5) * HOUR
        t = np.where(rng.random(len(t)) < 0.6, t // HOUR * HOUR, t // 60 * 60).astype(np.int64)
        parts.append(_filler_values(rng, stay, t, which))
    return EventRows.concat(parts)


def _filler_values(rng: np.random.Generator, stay: np.ndarray, t: np.ndarray,
                   which: np.ndarray) -> EventRows:
    mean = np.array([i.mean for i in CHART_FILLER])[which]
    sd = np.array([i.sd for i in CHART_FILLER])[which]
    dec = np.array([i.decimals for i in CHART_FILLER])[which]
    n_opt = np.array([len(i.options) for i in CHART_FILLER])[which]
    is_text = n_opt > 0
    num = np.where(is_text, np.nan, frames.rounded(mean + sd * rng.standard_normal(len(t)), dec))
    option = (rng.random(len(t)) * np.maximum(n_opt, 1)).astype(np.int32)
    text = np.where(is_text, _FILLER_OFFSET[which] + option, -1).astype(np.int32)
    itemid = np.array([i.itemid for i in CHART_FILLER], np.int32)[which]
    return EventRows(stay, t, itemid, num, text)


def _quirks(rng: np.random.Generator, rows: EventRows) -> EventRows:
    """Outliers and text-only values on target items, then exact duplicate rows."""
    num, text = rows.num.copy(), rows.text.copy()
    for itemid, (rate, values) in OUTLIERS.items():
        hit = (rows.item == itemid) & (rng.random(len(num)) < rate)
        num[hit] = rng.choice(values, hit.sum())
    numeric = (text < 0) & ~np.isnan(num)
    texted = numeric & np.isin(rows.item, (220045, 220277, 220210, 223761, 223835)) & (
        rng.random(len(num)) < 0.0008)
    num[texted] = np.nan
    text[texted] = _QUIRK0 + rng.integers(0, len(QUIRK_TEXTS), texted.sum())
    out = EventRows(rows.stay, rows.time, rows.item, num, text)
    dup = np.nonzero(rng.random(len(num)) < 0.003)[0]
    return EventRows.concat([out, EventRows(out.stay[dup], out.time[dup], out.item[dup],
                                            out.num[dup], out.text[dup])])
