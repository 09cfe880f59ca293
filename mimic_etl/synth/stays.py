"""Per-ICU-stay charting habits shared by the chartevents and outputevents builders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crypten_fl.mimic_etl.synth import clinical
from crypten_fl.mimic_etl.synth.cohort import Cohort
from crypten_fl.mimic_etl.synth.times import HOUR

_NEURO_UNITS = np.array([u.code.startswith("Neuro") for u in clinical.CARE_UNITS])
_CVICU = clinical.UNIT_NAMES.index("Cardiac Vascular Intensive Care Unit (CVICU)")


def _has(c: Cohort, name: str) -> np.ndarray:
    return c.a_has[:, clinical.CONDITIONS.index(name)]


@dataclass
class StayContext:
    """How each stay of the chunk is monitored (index = stay within the chunk)."""

    n: int
    adm: np.ndarray
    intime: np.ndarray
    outtime: np.ndarray
    art: np.ndarray  # arterial line: ABP items charted instead of most NIBP
    temp_mode: np.ndarray  # 0 = °F only, 1 = °C only, 2 = both
    gap_rate: np.ndarray  # share of hourly rounds skipped
    half_hour_rate: np.ndarray  # share of hours with an extra round at half past
    gcs_rate: np.ndarray  # share of rounds with a GCS (q1-2h in neuro patients, else q4h)
    fingerstick_rate: np.ndarray
    pressor_start: np.ndarray  # seconds, -1 if no vasopressor starts during the stay
    vent_start: np.ndarray  # seconds (meaningful where vent_hours > 0)
    vent_hours: np.ndarray  # ventilated hours within the stay
    foley: np.ndarray  # urinary catheter (hourly Foley output) vs voiding
    nurses: np.ndarray  # (stays, 4) caregiver ids, one per 12-h shift in rotation


def stay_context(rng: np.random.Generator, c: Cohort) -> StayContext:
    """Draw the charting habits of every stay in the chunk."""
    n = len(c.s_adm)
    adm = c.s_adm
    surgery = _has(c, "cardiac_surgery")[adm] | (c.s_first_unit == _CVICU)
    sick = c.a_severity[adm] > 1.0
    pressor_h = c.a_pressor[adm, 0]
    pressor_t = c.a_admit[adm] + np.nan_to_num(pressor_h, nan=-1e9) * HOUR
    in_stay = (pressor_t >= c.s_in) & (pressor_t < c.s_out)
    art_p = np.clip(0.25 + 0.6 * surgery + 0.3 * sick + 0.4 * in_stay, 0, 0.97)
    neuro = (_NEURO_UNITS[c.s_first_unit] | _has(c, "neurological")[adm]
             | _has(c, "stroke_tbi")[adm])
    vent_lo = np.maximum(c.a_admit[adm] + np.nan_to_num(c.a_vent[adm, 0]) * HOUR, c.s_in)
    vent_hi = np.minimum(c.a_admit[adm] + np.nan_to_num(c.a_vent[adm, 1]) * HOUR, c.s_out)
    vent_hours = np.where(np.isnan(c.a_vent[adm, 0]), 0.0,
                          np.maximum(vent_hi - vent_lo, 0) / HOUR)
    return StayContext(
        n=n, adm=adm, intime=c.s_in, outtime=c.s_out,
        art=rng.random(n) < art_p,
        temp_mode=rng.choice(3, size=n, p=[0.72, 0.16, 0.12]),
        gap_rate=rng.uniform(0.02, 0.14, n),
        half_hour_rate=np.where(c.a_severity[adm] > 0.5, 0.8, 0.45) * rng.uniform(0.5, 1.0, n),
        gcs_rate=np.where(neuro, 0.55, 0.25),
        fingerstick_rate=np.where(_has(c, "diabetes")[adm], 0.22,
                                  np.where(surgery, 0.2, 0.04)),
        pressor_start=np.where(in_stay, (pressor_t // 60).astype(np.int64) * 60, -1),
        vent_start=vent_lo.astype(np.int64),
        vent_hours=vent_hours,
        foley=rng.random(n) < np.clip(0.6 + 0.3 * sick + 0.3 * surgery, 0, 0.95),
        nurses=rng.integers(10_000, 99_999, (n, 4)),
    )


def icu_event_ids(c: Cohort, s: StayContext, stay: np.ndarray, time: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """The leading columns of every icu/*events row: subject, admission, stay, caregiver."""
    adm = s.adm[stay]
    return {
        "subject_id": c.p_subject[c.a_patient[adm]],
        "hadm_id": c.a_hadm[adm],
        "stay_id": c.s_stay[stay],
        "caregiver_id": caregiver(s, stay, time),
    }


def caregiver(s: StayContext, stay: np.ndarray, time: np.ndarray) -> np.ndarray:
    """The nurse on shift for each row (12-h shifts rotating through the stay's pool)."""
    shift = ((time - s.intime[stay]) // (12 * HOUR)) % 4
    return s.nurses[stay, shift]
