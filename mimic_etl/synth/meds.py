"""hosp/prescriptions: orders from the drug catalogue, timed by the clinical course.

Antibiotics start a few hours after the onset of sepsis, pneumonia or UTI (some are empiric,
without infection), vasopressors exactly during the vasopressor period, insulin with diabetes
or after cardiac surgery, furosemide with heart failure... Orders are renewed in consecutive
segments, as in MIMIC-IV (one row per order, poe_seq increasing per patient).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from crypten_fl.mimic_etl.synth import clinical, frames
from crypten_fl.mimic_etl.synth.cohort import PROVIDERS, Cohort
from crypten_fl.mimic_etl.synth.drugs import DRUGS, Drug
from crypten_fl.mimic_etl.synth.times import HOUR, to_minute

_TEXT_FIELDS = ("drug_type", "drug", "formulary_drug_cd", "gsn", "ndc", "prod_strength",
                "dose_val_rx", "dose_unit_rx", "form_val_disp", "form_unit_disp", "route")


def prescriptions(rng: np.random.Generator, c: Cohort, first_pharmacy: int) -> pl.DataFrame:
    """All prescriptions rows of the chunk, sorted by patient then starttime."""
    dur_h = (c.a_disch - c.a_admit) / HOUR
    adm_parts, drug_parts, start_parts, stop_parts = [], [], [], []
    for k, drug in enumerate(DRUGS):
        adm, start, stop = _orders(rng, c, drug, dur_h)
        adm_parts.append(adm)
        drug_parts.append(np.full(len(adm), k, np.int32))
        start_parts.append(start)
        stop_parts.append(stop)
    adm = np.concatenate(adm_parts)
    drug = np.concatenate(drug_parts)
    start = np.concatenate(start_parts)
    stop = np.concatenate(stop_parts)
    patient = c.a_patient[adm]
    order = frames.stable_order(patient, start, drug)
    adm, drug, start, stop, patient = adm[order], drug[order], start[order], stop[order], \
        patient[order]
    n = len(adm)
    per_patient = np.bincount(patient, minlength=c.n_patients)
    seq = (np.arange(n) - np.repeat(np.cumsum(per_patient) - per_patient, per_patient)
           + rng.integers(1, 60, c.n_patients)[patient])
    subject = c.p_subject[patient]
    poe = pc.binary_join_element_wise(pa.array(subject).cast(pa.string()),
                                      pa.array(seq).cast(pa.string()), "-")
    columns: dict[str, pa.Array | np.ndarray] = {
        "subject_id": subject,
        "hadm_id": c.a_hadm[adm],
        "pharmacy_id": first_pharmacy + np.arange(n, dtype=np.int64),
        "poe_id": poe,
        "poe_seq": seq,
        "order_provider_id": frames.categories(
            np.where(rng.random(n) < 0.05, -1, (adm * 13 + drug) % len(PROVIDERS)), PROVIDERS),
        "starttime": frames.timestamps(start),
        "stoptime": frames.timestamps(stop, rng.random(n) < 0.01),
    }
    for name in _TEXT_FIELDS:
        columns[name] = frames.categories(drug, [getattr(d, name) for d in DRUGS])
    columns["form_rx"] = pa.nulls(n, pa.string())  # almost always empty in MIMIC-IV
    columns["doses_per_24_hrs"] = frames.numbers(
        np.array([np.nan if d.doses_per_24_hrs is None else d.doses_per_24_hrs
                  for d in DRUGS])[drug])
    return frames.frame(columns)


def _orders(rng: np.random.Generator, c: Cohort, drug: Drug,
            dur_h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(admission, start s, stop s) of every order of one drug."""
    n = len(c.a_patient)
    p = np.where(c.a_icu, drug.p_icu, drug.p_ward)
    onset = np.full(n, np.inf)
    for cond, boost in drug.boost.items():
        j = clinical.CONDITIONS.index(cond)
        has = c.a_has[:, j]
        p = np.where(has, 1 - (1 - p) * (1 - boost), p)
        onset = np.where(has, np.minimum(onset, np.nan_to_num(c.a_onset[:, j], nan=np.inf)), onset)
    anytime = rng.uniform(0, 0.25, n) * dur_h + rng.uniform(0, 6, n)
    end = np.full(n, np.inf)
    if drug.anchor == "pressor":
        p = np.where(np.isnan(c.a_pressor[:, 0]), 0.0, p)
        begin = c.a_pressor[:, 0] + rng.uniform(0, 0.5, n)
        end = c.a_pressor[:, 1]
    elif drug.anchor == "icu":
        begin = np.where(c.a_icu, c.a_tref + rng.uniform(-1, 3, n), anytime)
    elif drug.anchor == "admit":
        begin = anytime
    else:
        begin = np.where(np.isfinite(onset), onset + rng.uniform(0.5, 4, n), anytime)
    chosen = np.nonzero(rng.random(n) < p)[0]
    renewals = 1 + rng.poisson(drug.repeats, len(chosen))
    adm = np.repeat(chosen, renewals)
    first = np.cumsum(renewals) - renewals
    length = np.maximum(rng.exponential(drug.hours, len(adm)), 1.0)
    cum = np.cumsum(length)
    offset = cum - length - np.repeat(cum[first] - length[first], renewals)
    start_h = np.clip(begin[adm], 0, None) + offset
    stop_h = np.minimum(np.minimum(start_h + length, end[adm]), dur_h[adm] + 2)
    ok = (start_h < dur_h[adm]) & (stop_h > start_h)
    adm, start_h, stop_h = adm[ok], start_h[ok], stop_h[ok]
    base = c.a_admit[adm]
    return adm, to_minute(base + start_h * HOUR), to_minute(base + stop_h * HOUR)
