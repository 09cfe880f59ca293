"""hosp/labevents: panels per blood draw, values from the latent physiology, real-data quirks.

Quirks (docs/synth.md): hadm_id NULL for ED and outpatient draws and ~3 % of inpatient ones;
text results with NULL valuenum ('___', 'ERROR', '<0.5'); impossible values (9999);
duplicated results under a new labevent_id; free-text comments with commas and quotes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from crypten_fl.mimic_etl.synth import clinical, frames
from crypten_fl.mimic_etl.synth.cohort import PROVIDERS, Cohort
from crypten_fl.mimic_etl.synth.effects import CHANNELS
from crypten_fl.mimic_etl.synth.labdraws import CLINIC, Draws, schedule
from crypten_fl.mimic_etl.synth.labitems import ALL_LAB_ITEMS, PANELS
from crypten_fl.mimic_etl.synth.physiology import CH, Physiology
from crypten_fl.mimic_etl.synth.times import HOUR

# panel -> probability per draw kind (ICU, ward, ED, outpatient)
PANEL_P: dict[str, tuple[float, float, float, float]] = {
    "chem": (0.95, 0.9, 0.95, 0.8), "cbc": (0.9, 0.85, 0.95, 0.7), "diff": (0.3, 0.2, 0.5, 0.3),
    "coag": (0.45, 0.2, 0.5, 0.15), "lft": (0.22, 0.12, 0.4, 0.3), "gas": (0.22, 0.02, 0.1, 0.0),
    "urine": (0.04, 0.05, 0.3, 0.1), "misc": (0.1, 0.1, 0.3, 0.05),
}
# extra probability of ordering a panel when the admission has a condition
PANEL_BOOST: dict[str, dict[str, float]] = {
    "coag": {"liver_disease": 0.35, "sepsis": 0.15},
    "lft": {"liver_disease": 0.35, "sepsis": 0.2, "malnutrition": 0.15},
    "gas": {"sepsis": 0.25, "respiratory_failure": 0.35, "cardiac_surgery": 0.5},
    "urine": {"uti": 0.25},
}
TEXT_RESULTS = ("___", "ERROR", "<0.5")
COMMENTS = (
    "HEMOLYSIS PRESENT, RESULT MAY BE FALSELY ELEVATED.",
    'VERIFIED BY REPEAT ANALYSIS. "CRITICAL" VALUE CALLED TO RN.',
    "___",
    "SPECIMEN CLOTTED, PLEASE RESEND",
)
_ITEM_POS = {item.itemid: k for k, item in enumerate(ALL_LAB_ITEMS)}
_OPT_OFFSET = np.cumsum([0] + [len(i.options) for i in ALL_LAB_ITEMS])[:-1]
LAB_TEXTS: tuple[str, ...] = tuple(o for i in ALL_LAB_ITEMS for o in i.options) + TEXT_RESULTS
_TEXT0 = len(LAB_TEXTS) - len(TEXT_RESULTS)
_UNITS = sorted({i.unit for i in ALL_LAB_ITEMS if i.unit})


def _arr(field: str) -> np.ndarray:
    return np.array([getattr(i, field) for i in ALL_LAB_ITEMS])


_MEAN, _SD, _DEC, _LOG = _arr("mean"), _arr("sd"), _arr("decimals"), _arr("log")
_NOISE = _arr("noise")
_NOPT = np.array([len(i.options) for i in ALL_LAB_ITEMS])
_REF_LO = np.array([i.ref[0] if i.ref else np.nan for i in ALL_LAB_ITEMS])
_REF_HI = np.array([i.ref[1] if i.ref else np.nan for i in ALL_LAB_ITEMS])
_UNIT_OF = np.array([_UNITS.index(i.unit) if i.unit else -1 for i in ALL_LAB_ITEMS])
_IDS = _arr("itemid").astype(np.int32)


def labevents(rng: np.random.Generator, c: Cohort, ph: Physiology, first_id: int,
              first_specimen: int) -> tuple[pl.DataFrame, int]:
    """All labevents rows of the chunk and the number of specimens used."""
    d = schedule(rng, c)
    d = Draws(*(a[np.argsort(d.time, kind="stable")] for a in (d.patient, d.adm, d.time,
                                                                  d.kind)))
    draw, item, specimen = _rows(rng, c, d)
    value = _values(rng, c, ph, d, draw, item)
    text = np.where(_NOPT[item] > 0, _OPT_OFFSET[item] + _option(rng, c, d, draw, item), -1)
    quirk = (text < 0) & (rng.random(len(item)) < 0.004)
    text = np.where(quirk, _TEXT0 + rng.integers(0, len(TEXT_RESULTS), len(item)), text)
    value = np.where(quirk | (text >= 0), np.nan, value)
    value = np.where((text < 0) & (rng.random(len(item)) < 0.0005), 9999.0, value)
    dup = np.nonzero(rng.random(len(item)) < 0.002)[0]
    rows = np.concatenate([np.arange(len(item)), dup])
    rows = rows[np.argsort(rows % len(item), kind="stable")]  # duplicates next to originals
    rows = rows[frames.owner_time_order(d.patient[draw[rows]], d.time[draw[rows]])]
    draw, item, specimen = draw[rows], item[rows], specimen[rows]
    value, text = value[rows], text[rows]
    n = len(rows)
    adm = d.adm[draw]
    hadm_null = (adm < 0) | (rng.random(n) < 0.03)
    t = d.time[draw]
    abnormal = (value < _REF_LO[item]) | (value > _REF_HI[item])
    kind = d.kind[draw]
    priority = np.where(kind == CLINIC, 1, np.where(rng.random(n) < 0.6, 0, 1))
    priority = np.where(rng.random(n) < 0.1, -1, priority)
    out = frames.frame({
        "labevent_id": first_id + np.arange(n, dtype=np.int64),
        "subject_id": c.p_subject[d.patient[draw]],
        "hadm_id": frames.numbers(c.a_hadm[np.maximum(adm, 0)], hadm_null),
        "specimen_id": first_specimen + specimen,
        "itemid": _IDS[item],
        "order_provider_id": frames.categories(
            np.where(rng.random(n) < 0.3, -1, d.patient[draw] * 7 % len(PROVIDERS)),
            PROVIDERS),
        "charttime": frames.timestamps(t),
        "storetime": frames.timestamps(t + rng.integers(30, 240, n) * 60,
                                       rng.random(n) < 0.02),
        "value": frames.choose_text(text, LAB_TEXTS, frames.number_strings(value, _DEC[item])),
        "valuenum": frames.numbers(value),
        "valueuom": frames.categories(_UNIT_OF[item], _UNITS),
        "ref_range_lower": frames.numbers(_REF_LO[item]),
        "ref_range_upper": frames.numbers(_REF_HI[item]),
        "flag": frames.categories(np.where(abnormal, 0, -1), ["abnormal"]),
        "priority": frames.categories(priority, ["STAT", "ROUTINE"]),
        "comments": frames.categories(
            np.where(rng.random(n) < 0.008, rng.integers(0, len(COMMENTS), n), -1), COMMENTS),
    })
    return out, int(specimen.max(initial=-1)) + 1


def _rows(rng: np.random.Generator, c: Cohort,
          d: Draws) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(draw index, item index, specimen number) of every result row."""
    adm = np.maximum(d.adm, 0)
    draws, items, specimens = [], [], []
    n_spec = 0
    for panel, members in PANELS.items():
        p = np.array(PANEL_P[panel])[d.kind]
        for cond, boost in PANEL_BOOST.get(panel, {}).items():
            has = c.a_has[adm, clinical.CONDITIONS.index(cond)] & (d.adm >= 0)
            p = np.where(has & (d.kind != CLINIC), p + boost, p)
        chosen = np.nonzero(rng.random(len(p)) < p)[0]
        idx = np.array([_ITEM_POS[i.itemid] for i in members])
        r_draw = np.repeat(chosen, len(idx))
        r_item = np.tile(idx, len(chosen))
        r_spec = np.repeat(n_spec + np.arange(len(chosen)), len(idx))
        if panel == "misc":
            keep = rng.random(len(r_draw)) < 0.35
            r_draw, r_item, r_spec = r_draw[keep], r_item[keep], r_spec[keep]
        n_spec += len(chosen)
        draws.append(r_draw)
        items.append(r_item)
        specimens.append(r_spec)
    return np.concatenate(draws), np.concatenate(items), np.concatenate(specimens)


def _latent(c: Cohort, ph: Physiology, d: Draws, channel: str, draw: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Latent channel value at each row's draw (outpatient: baseline + chronic + noise)."""
    adm = d.adm[draw]
    inpatient = adm >= 0
    h = (d.time[draw] - c.a_admit[np.maximum(adm, 0)]) / HOUR
    spec = CHANNELS[channel]
    outside = ph.level[d.patient[draw], CH[channel]] + rng.normal(0, spec.noise * 1.5, len(adm))
    return np.where(inpatient, ph.at(channel, np.maximum(adm, 0), h), outside)


def _values(rng: np.random.Generator, c: Cohort, ph: Physiology, d: Draws, draw: np.ndarray,
            item: np.ndarray) -> np.ndarray:
    n = len(item)
    z = rng.standard_normal(n)
    filler = _MEAN[item] + _SD[item] * z
    value = np.where(_LOG[item], np.exp(filler), filler)
    for k, lab in enumerate(ALL_LAB_ITEMS):
        if lab.channel is None:
            continue
        rows = np.nonzero(item == k)[0]
        if len(rows) == 0:
            continue
        value[rows] = _target(c, ph, d, draw[rows], lab.channel, rng) + 0.0
        if lab.channel in CHANNELS and CHANNELS[lab.channel].log:
            value[rows] = value[rows] * np.exp(lab.noise * z[rows])
        else:
            value[rows] = value[rows] + lab.noise * z[rows]
    return np.maximum(frames.rounded(value, _DEC[item]), 0.0)


def _target(c: Cohort, ph: Physiology, d: Draws, draw: np.ndarray, channel: str,
            rng: np.random.Generator) -> np.ndarray:
    """Natural-unit value of a target lab channel or formula."""
    def nat(ch: str) -> np.ndarray:
        v = _latent(c, ph, d, ch, draw, rng)
        return np.exp(v) if CHANNELS[ch].log else v

    if channel == "chloride":
        return nat("sodium") - nat("bicarbonate") - nat("aniongap")
    if channel == "hematocrit":
        return 3.0 * nat("hemoglobin") + rng.normal(0, 0.8, len(draw))
    if channel == "pt":
        return 11.5 * nat("inr")
    return nat(channel)


def _option(rng: np.random.Generator, c: Cohort, d: Draws, draw: np.ndarray,
            item: np.ndarray) -> np.ndarray:
    """Text option per row; urinalysis of UTI admissions skews to the positive options."""
    adm = d.adm[draw]
    uti = (adm >= 0) & c.a_has[np.maximum(adm, 0), clinical.CONDITIONS.index("uti")]
    u = rng.random(len(item)) ** np.where(uti, 0.4, 1.6)
    return (u * np.maximum(_NOPT[item], 1)).astype(np.int64)

