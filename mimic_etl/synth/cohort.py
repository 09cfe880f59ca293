"""One chunk of synthetic patients: who they are, their admissions and ICU stays, and their illness.

Everything is plain numpy arrays indexed by patient, admission or stay; times are int64
seconds since 1970 (shifted years 2100-2200, rounded to the minute), durations in hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crypten_fl.mimic_etl.synth import clinical
from crypten_fl.mimic_etl.synth.effects import CHANNEL_NAMES, EFFECTS
from crypten_fl.mimic_etl.synth.times import DAY, HOUR, YEAR, to_minute

N_COND = len(clinical.CONDITIONS)
STAYS_PER_PATIENT = (np.array([1, 2, 3, 4]), np.array([0.80, 0.16, 0.03, 0.01]))
MAX_ADMISSIONS = 8  # per patient (id scheme: 8 slots); stays per patient are at most 4
ICD10_FROM = 2015.75  # ICD-10-CM replaced ICD-9-CM in US hospitals on 2015-10-01
_ALNUM = np.array(list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"))
# provider ids look like MIMIC-IV's ('P' + 5 characters); a fixed pool shared by all tables
PROVIDERS: tuple[str, ...] = tuple(
    "P" + "".join(row) for row in np.random.default_rng(7).choice(_ALNUM, (600, 5))
)


@dataclass
class Cohort:
    """Patients (``p_*``), admissions (``a_*``) and ICU stays (``s_*``) of one chunk."""

    p_subject: np.ndarray
    p_female: np.ndarray
    p_age: np.ndarray  # anchor_age
    p_anchor_year: np.ndarray
    p_group: np.ndarray  # index into schema.ANCHOR_YEAR_GROUPS[version]
    p_dod: np.ndarray  # seconds, -1 if alive
    p_icu: np.ndarray
    p_z: np.ndarray  # (patients, channels) between-patient deviations
    a_patient: np.ndarray
    a_hadm: np.ndarray
    a_admit: np.ndarray
    a_disch: np.ndarray
    a_death: np.ndarray  # seconds, -1 if discharged alive
    a_icu: np.ndarray
    a_ed: np.ndarray  # admitted through the emergency department
    a_unit: np.ndarray  # unit of the first stay, -1 without ICU stay
    a_has: np.ndarray  # (admissions, conditions) true state
    a_coded: np.ndarray  # (admissions, conditions) present in diagnoses_icd
    a_gain: np.ndarray  # (admissions, conditions) constant-effect intensity
    a_acute: np.ndarray  # (admissions, conditions) acute-effect intensity (0 = none)
    a_onset: np.ndarray  # (admissions, conditions) hours from admittime
    a_duration: np.ndarray
    a_recovery: np.ndarray
    a_severity: np.ndarray
    a_drift: np.ndarray  # severity change per 48 h
    a_tref: np.ndarray  # hours from admittime to first ICU intime (or a ward reference)
    a_icd10: np.ndarray
    a_vent: np.ndarray  # (admissions, 2) hours from admittime, NaN if never ventilated
    a_pressor: np.ndarray  # (admissions, 2) hours from admittime, NaN if none
    s_adm: np.ndarray
    s_stay: np.ndarray
    s_first_unit: np.ndarray
    s_last_unit: np.ndarray
    s_in: np.ndarray
    s_out: np.ndarray

    @property
    def n_patients(self) -> int:
        """Patients in the chunk."""
        return len(self.p_subject)


def scramble(x: np.ndarray, base: int, mult: int) -> np.ndarray:
    """A bijection of 0..9,999,990 onto 8-digit ids starting at ``base`` (looks unordered)."""
    return base + (x.astype(np.int64) * mult + 4_821_937) % 9_999_991


def _within(group: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Position of each element within its group (elements sorted by group)."""
    starts = np.cumsum(counts) - counts
    return np.arange(len(group)) - np.repeat(starts, counts)


def build_cohort(
    rng: np.random.Generator, first_slot: int, n_icu: int, n_other: int, n_groups: int
) -> Cohort:
    """Patients ``first_slot ..`` of the release: ``n_icu`` with ICU stays, ``n_other`` without."""
    n = n_icu + n_other
    slot = first_slot + np.arange(n)
    p_icu = rng.permutation(np.arange(n) < n_icu)
    p_subject = 10_000_000 + slot * 11 + rng.integers(0, 11, n)
    home = np.where(p_icu, clinical.sample_units(rng, n), -1)
    p_age = clinical.sample_age(rng, home)
    p_female = rng.random(n) < np.where(p_icu, 0.44, 0.53)
    latents = clinical.sample_latents(rng, n, clinical.PATIENT_LATENTS)
    chronic = clinical.sample_conditions(
        rng, clinical.CHRONIC, home, p_age, p_female, latents, {})

    # admissions per patient and stays per ICU admission
    n_stays = np.where(p_icu, rng.choice(STAYS_PER_PATIENT[0], size=n, p=STAYS_PER_PATIENT[1]), 0)
    n_icu_adm = np.where(p_icu, 1 + rng.binomial(np.maximum(n_stays - 1, 0), 0.7), 0)
    n_ward = np.where(p_icu, rng.poisson(0.6, n), 1 + rng.poisson(0.5, n))
    n_adm = n_icu_adm + np.minimum(n_ward, MAX_ADMISSIONS - n_icu_adm)
    a_patient = np.repeat(np.arange(n), n_adm)
    pos = _within(a_patient, n_adm)
    a_icu = pos < n_icu_adm[a_patient]
    extra_at = rng.integers(0, np.maximum(n_icu_adm, 1))[a_patient]
    a_nstays = a_icu + (a_icu & (pos == extra_at)) * (n_stays - n_icu_adm)[a_patient]
    order = np.lexsort((rng.random(len(a_patient)), a_patient))  # shuffle within patient
    a_icu, a_nstays = a_icu[order], a_nstays[order]
    pos = _within(a_patient, n_adm)
    a_hadm = scramble(slot[a_patient] * MAX_ADMISSIONS + pos, 20_000_000, 7_654_321)

    # care units: home unit for the first ICU admission, often again later
    s_adm = np.repeat(np.arange(len(a_patient)), a_nstays)
    s_pos = _within(s_adm, a_nstays)
    s_patient = a_patient[s_adm]
    s_seq = _within(s_patient, np.bincount(s_patient, minlength=n))
    keep = (s_seq == 0) | (rng.random(len(s_adm)) < 0.6)
    s_first_unit = np.where(keep, home[s_patient], clinical.sample_units(rng, len(s_adm)))
    moved = rng.random(len(s_adm)) < 0.08
    s_last_unit = np.where(moved, clinical.sample_units(rng, len(s_adm)), s_first_unit)
    a_unit = np.full(len(a_patient), -1)
    a_unit[s_adm[s_pos == 0]] = s_first_unit[s_pos == 0]

    # acute conditions per admission, on top of the patient's chronic ones
    n_a = len(a_patient)
    a_lat = {k: v[a_patient] for k, v in latents.items()}
    a_lat["infection"] = rng.standard_normal(n_a)
    a_severity = rng.standard_normal(n_a) + clinical.severity_shift(a_unit)
    a_lat["severity"] = a_severity
    known = {c: chronic[c][a_patient] for c in clinical.CHRONIC}
    has = clinical.sample_conditions(rng, clinical.ACUTE, a_unit, p_age[a_patient],
                                     p_female[a_patient], a_lat, known)
    a_has = np.column_stack([has[c] for c in clinical.CONDITIONS])
    is_chronic = np.array([c in clinical.CHRONIC for c in clinical.CONDITIONS])
    # coding is imperfect: chronic conditions are sometimes left out, or coded from history
    coded_p = np.where(a_has, np.where(is_chronic, 0.88, 0.96), np.where(is_chronic, 0.015, 0))
    a_coded = rng.random(a_has.shape) < coded_p
    p_gain = rng.uniform(0.3, 1.5, (n, N_COND))
    a_gain = np.where(is_chronic, p_gain[a_patient], rng.uniform(0.3, 1.4, (n_a, N_COND)))

    last = pos == n_adm[a_patient] - 1
    dies = last & (rng.random(n_a) < clinical.death_probability(
        a_severity, p_age[a_patient], has, a_icu))
    a_drift = np.where(dies, rng.normal(0.9, 0.4, n_a), rng.normal(-0.4, 0.4, n_a))
    a_severity = a_severity - 0.2 * a_drift  # those who deteriorate start less sick

    # durations: ICU stays (sicker = longer), gaps inside an admission, ward time
    los_h = 24 * np.exp(np.log(2.0) + 0.95 * rng.standard_normal(len(s_adm))
                        + 0.2 * a_severity[s_adm] + 0.35 * a_has[s_adm, 1])
    los_h = np.clip(los_h, 2.0, 45 * 24)
    last_stay = s_pos == a_nstays[s_adm] - 1
    gap_h = np.where(last_stay, 0.0, rng.uniform(24, 144, len(s_adm)))
    ed = rng.random(n_a) < 0.6
    pre_h = np.where(ed, rng.uniform(0.5, 10, n_a), rng.exponential(30, n_a))
    seg = los_h + gap_h
    seg_start = np.cumsum(seg) - seg
    adm_first = np.searchsorted(s_adm, np.arange(n_a))
    s_in_h = pre_h[s_adm] + seg_start - seg_start[np.minimum(adm_first, len(s_adm) - 1)][s_adm]
    s_out_h = s_in_h + los_h
    icu_end = np.zeros(n_a)
    np.maximum.at(icu_end, s_adm, s_out_h)
    in_icu_death = dies & a_icu & (rng.random(n_a) < 0.65)
    ward_h = np.where(a_icu, rng.uniform(12, 200, n_a), 24 * rng.lognormal(np.log(3.5), 0.7, n_a))
    dur_h = np.where(in_icu_death, icu_end + rng.uniform(0, 0.5, n_a), icu_end + ward_h)
    a_tref = np.where(a_icu, 0.0, rng.uniform(0, 0.6, n_a) * dur_h)
    a_tref[s_adm[s_pos == 0]] = s_in_h[s_pos == 0]

    # calendar: anchor year (shifted 2100-2200), admissions spread over a few years
    p_group = rng.integers(0, n_groups, n)
    p_anchor_year = rng.integers(2110, 2190, n)
    anchor_start = (p_anchor_year - 1970).astype("datetime64[Y]").astype("datetime64[s]")
    anchor_s = anchor_start.astype(np.int64)
    gap_before = np.where(pos == 0, rng.uniform(0, YEAR, n_a),
                          rng.uniform(7, 60, n_a) * DAY + rng.exponential(200 * DAY, n_a))
    span = gap_before + dur_h * HOUR
    cum = np.cumsum(span) - span
    pat_first = np.cumsum(n_adm) - n_adm
    a_admit = to_minute(anchor_s[a_patient] + (cum - cum[pat_first][a_patient]) + gap_before)
    a_disch = to_minute(a_admit + dur_h * HOUR)
    a_death = np.where(dies, a_disch, -1)
    s_in = to_minute(a_admit[s_adm] + s_in_h * HOUR)
    s_out = to_minute(a_admit[s_adm] + s_out_h * HOUR)
    s_out = np.where(in_icu_death[s_adm] & last_stay, np.minimum(s_out, a_disch[s_adm]), s_out)
    real_year = (2008 + 3 * p_group + rng.uniform(0, 3, n))[a_patient] + (
        a_admit - anchor_s[a_patient]) / YEAR
    p_dod = _dod(rng, a_patient, a_death, a_disch, p_icu)

    onset, duration, recovery, acute = _acute_timing(rng, a_has, a_tref, a_icu)
    return Cohort(
        p_subject=p_subject, p_female=p_female, p_age=p_age.astype(np.int64),
        p_anchor_year=p_anchor_year, p_group=p_group, p_dod=p_dod, p_icu=p_icu,
        p_z=rng.standard_normal((n, len(CHANNEL_NAMES))),
        a_patient=a_patient, a_hadm=a_hadm, a_admit=a_admit, a_disch=a_disch,
        a_death=a_death, a_icu=a_icu, a_ed=ed, a_unit=a_unit, a_has=a_has, a_coded=a_coded,
        a_gain=a_gain, a_acute=acute, a_onset=onset, a_duration=duration,
        a_recovery=recovery, a_severity=a_severity, a_drift=a_drift, a_tref=a_tref,
        a_icd10=real_year >= ICD10_FROM,
        a_vent=_vent(rng, a_has, onset, duration, a_tref, a_severity, a_icu),
        a_pressor=_pressor(rng, a_has, onset, a_tref, a_severity, a_icu),
        s_adm=s_adm, s_stay=scramble(slot[s_patient] * 4 + s_seq, 30_000_000, 3_456_789),
        s_first_unit=s_first_unit, s_last_unit=s_last_unit, s_in=s_in, s_out=s_out,
    )


def _dod(rng: np.random.Generator, a_patient: np.ndarray, a_death: np.ndarray,
         a_disch: np.ndarray, p_icu: np.ndarray) -> np.ndarray:
    """Date of death (seconds at midnight): in hospital, or within a year of last discharge."""
    n = len(p_icu)
    death = np.full(n, -1, dtype=np.int64)
    np.maximum.at(death, a_patient, a_death)
    last_disch = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_disch, a_patient, a_disch)
    later = (death < 0) & (rng.random(n) < np.where(p_icu, 0.12, 0.04))
    when = np.where(later, last_disch + rng.uniform(2, 365, n) * DAY, death)
    return np.where(when >= 0, (when // DAY).astype(np.int64) * DAY, -1)


def _acute_timing(
    rng: np.random.Generator, has: np.ndarray, tref: np.ndarray, icu: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Onset (hours from admittime), duration, recovery and intensity of each acute effect."""
    shape = has.shape
    onset = np.full(shape, np.nan)
    duration = np.ones(shape)
    recovery = np.zeros(shape)
    acute = np.zeros(shape)
    for j, name in enumerate(clinical.CONDITIONS):
        effect = EFFECTS[name]
        t = effect.timing
        if t is None:
            continue
        late = rng.random(shape[0]) < t.late_share
        rel = np.where(late, rng.uniform(*t.late, shape[0]), rng.uniform(*t.onset, shape[0]))
        onset[:, j] = np.maximum(tref + rel, -12.0)
        duration[:, j] = rng.uniform(*t.duration, shape[0])
        recovery[:, j] = rng.uniform(*t.recovery, shape[0])
        shown = has[:, j] & (rng.random(shape[0]) < effect.acute_share)
        acute[:, j] = np.where(shown, rng.uniform(0.3, 1.4, shape[0]), 0.0)
        acute[:, j] *= np.where(icu, 1.0, 0.5)
    return onset, duration, recovery, acute


def _col(name: str) -> int:
    return clinical.CONDITIONS.index(name)


def _vent(rng: np.random.Generator, has: np.ndarray, onset: np.ndarray, duration: np.ndarray,
          tref: np.ndarray, severity: np.ndarray, icu: np.ndarray) -> np.ndarray:
    """Invasive ventilation period (hours from admittime) or NaN."""
    n = len(tref)
    rf, cs, st = _col("respiratory_failure"), _col("cardiac_surgery"), _col("stroke_tbi")
    start = np.full(n, np.inf)
    end = np.full(n, -np.inf)
    cases = (
        (has[:, rf] & (rng.random(n) < 0.6), onset[:, rf],
         onset[:, rf] + duration[:, rf] * rng.uniform(0.8, 1.5, n)),
        (has[:, cs] & (rng.random(n) < 0.9), tref - 1, tref + rng.uniform(3, 10, n)),
        (has[:, st] & (rng.random(n) < 0.35), tref, tref + rng.uniform(24, 120, n)),
        ((severity > 1.5) & (rng.random(n) < 0.5), tref, tref + rng.uniform(12, 96, n)),
    )
    for flag, lo, hi in cases:
        start = np.where(flag, np.minimum(start, lo), start)
        end = np.where(flag, np.maximum(end, hi), end)
    on = icu & np.isfinite(start)
    return np.column_stack([np.where(on, start, np.nan), np.where(on, end, np.nan)])


def _pressor(rng: np.random.Generator, has: np.ndarray, onset: np.ndarray, tref: np.ndarray,
             severity: np.ndarray, icu: np.ndarray) -> np.ndarray:
    """Vasopressor period (hours from admittime) or NaN."""
    n = len(tref)
    sep, cs = _col("sepsis"), _col("cardiac_surgery")
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    cases = (
        ((severity > 1.2) & (rng.random(n) < 0.3), tref, tref + rng.uniform(6, 48, n)),
        (has[:, cs] & (rng.random(n) < 0.6), tref - 1, tref + rng.uniform(4, 24, n)),
        (has[:, sep] & (rng.random(n) < 0.45), onset[:, sep] + rng.uniform(0.5, 4, n),
         onset[:, sep] + rng.uniform(12, 72, n)),
    )
    for flag, lo, hi in cases:
        start = np.where(flag & icu, lo, start)
        end = np.where(flag & icu, hi, end)
    return np.column_stack([start, end])
