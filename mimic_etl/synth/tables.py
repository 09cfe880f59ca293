"""hosp/patients, hosp/admissions, icu/icustays and hosp/diagnoses_icd frames of one chunk."""

from __future__ import annotations

import numpy as np
import polars as pl
from crypten_fl.mimic_etl.synth import clinical, frames, icd
from crypten_fl.mimic_etl.synth.cohort import PROVIDERS, Cohort
from crypten_fl.mimic_etl.synth.schema import ANCHOR_YEAR_GROUPS
from crypten_fl.mimic_etl.synth.times import DAY, HOUR, to_minute

# (value, weight) vocabularies as in MIMIC-IV admissions
_RACE = (("WHITE", 62), ("BLACK/AFRICAN AMERICAN", 10), ("WHITE - OTHER EUROPEAN", 3),
         ("HISPANIC/LATINO - PUERTO RICAN", 2), ("HISPANIC OR LATINO", 2), ("ASIAN", 1.5),
         ("ASIAN - CHINESE", 1.5), ("WHITE - RUSSIAN", 1), ("BLACK/CAPE VERDEAN", 1),
         ("OTHER", 4), ("UNKNOWN", 9), ("UNABLE TO OBTAIN", 1.5),
         ("PATIENT DECLINED TO ANSWER", 1), ("AMERICAN INDIAN/ALASKA NATIVE", 0.3))
_MARITAL = (("MARRIED", 45), ("SINGLE", 30), ("WIDOWED", 15), ("DIVORCED", 8), (None, 2))
_LANGUAGE = {
    "2.2": (("ENGLISH", 90), ("?", 10)),
    "3.1": (("English", 88), ("Spanish", 4), ("Chinese", 1.5), ("Russian", 1.5),
            ("Portuguese", 1), ("Haitian", 1), ("Other", 3)),
}
_INSURANCE = {
    "2.2": (("Medicare", 45), ("Medicaid", 10), ("Other", 45)),
    "3.1": (("Medicare", 45), ("Medicaid", 10), ("Private", 35), ("Other", 8), ("No charge", 2)),
}
_TYPE_ED = (("EW EMER.", 70), ("URGENT", 15), ("DIRECT EMER.", 5), ("OBSERVATION ADMIT", 10))
_TYPE_OTHER = (("ELECTIVE", 30), ("SURGICAL SAME DAY ADMISSION", 25), ("URGENT", 20),
               ("DIRECT EMER.", 10), ("DIRECT OBSERVATION", 15))
_FROM = (("PHYSICIAN REFERRAL", 35), ("TRANSFER FROM HOSPITAL", 25), ("CLINIC REFERRAL", 10),
         ("PROCEDURE SITE", 10), ("TRANSFER FROM SKILLED NURSING FACILITY", 5),
         ("WALK-IN/SELF REFERRAL", 5), ("PACU", 5), ("INFORMATION NOT AVAILABLE", 5))
_TO = (("HOME", 35), ("HOME HEALTH CARE", 25), ("SKILLED NURSING FACILITY", 18), ("REHAB", 7),
       ("CHRONIC/LONG TERM ACUTE CARE", 4), ("HOSPICE", 2), ("AGAINST ADVICE", 1),
       ("ACUTE HOSPITAL", 2), (None, 6))


def _pick(rng: np.random.Generator, vocab: tuple, n: int) -> tuple[np.ndarray, list]:
    values = [v for v, _ in vocab]
    weights = np.array([w for _, w in vocab], dtype=float)
    return rng.choice(len(values), size=n, p=weights / weights.sum()), values


def patients(c: Cohort, version: str) -> pl.DataFrame:
    """hosp/patients rows of the chunk."""
    return frames.frame({
        "subject_id": c.p_subject,
        "gender": frames.categories(c.p_female.astype(np.int32), ["M", "F"]),
        "anchor_age": c.p_age,
        "anchor_year": c.p_anchor_year,
        "anchor_year_group": frames.categories(c.p_group, ANCHOR_YEAR_GROUPS[version]),
        "dod": frames.dates(c.p_dod, c.p_dod < 0),
    })


def admissions(rng: np.random.Generator, c: Cohort, version: str) -> pl.DataFrame:
    """hosp/admissions rows of the chunk."""
    n = len(c.a_patient)
    race, race_v = _pick(rng, _RACE, c.n_patients)
    marital, marital_v = _pick(rng, _MARITAL, c.n_patients)
    language, language_v = _pick(rng, _LANGUAGE[version], c.n_patients)
    insurance, insurance_v = _pick(rng, _INSURANCE[version], c.n_patients)
    old = c.p_age >= 65
    insurance = np.where(old & (rng.random(c.n_patients) < 0.8), 0, insurance)
    type_ed, types = _pick(rng, _TYPE_ED, n)
    type_other, types_other = _pick(rng, _TYPE_OTHER, n)
    kind = np.where(c.a_ed, type_ed, len(types) + type_other)
    source, source_v = _pick(rng, _FROM, n)
    dest, dest_v = _pick(rng, _TO, n)
    died = c.a_death >= 0
    p = c.a_patient
    return frames.frame({
        "subject_id": c.p_subject[p],
        "hadm_id": c.a_hadm,
        "admittime": frames.timestamps(c.a_admit),
        "dischtime": frames.timestamps(c.a_disch),
        "deathtime": frames.timestamps(c.a_death, ~died),
        "admission_type": frames.categories(kind, types + types_other),
        "admit_provider_id": frames.categories(rng.integers(0, len(PROVIDERS), n), PROVIDERS),
        "admission_location": frames.categories(np.where(c.a_ed, 0, 1 + source),
                                                ["EMERGENCY ROOM", *source_v]),
        "discharge_location": frames.categories(np.where(died, 0, 1 + dest), ["DIED", *dest_v]),
        "insurance": frames.categories(insurance[p], insurance_v),
        "language": frames.categories(language[p], language_v),
        "marital_status": frames.categories(marital[p], marital_v),
        "race": frames.categories(race[p], race_v),
        "edregtime": frames.timestamps(to_minute(c.a_admit - rng.uniform(2, 10, n) * HOUR),
                                       ~c.a_ed),
        "edouttime": frames.timestamps(to_minute(c.a_admit + rng.uniform(0, 1, n) * HOUR),
                                       ~c.a_ed),
        "hospital_expire_flag": died.astype(np.int8),
    })


def icustays(c: Cohort) -> pl.DataFrame:
    """icu/icustays rows of the chunk."""
    adm = c.s_adm
    return frames.frame({
        "subject_id": c.p_subject[c.a_patient[adm]],
        "hadm_id": c.a_hadm[adm],
        "stay_id": c.s_stay,
        "first_careunit": frames.categories(c.s_first_unit, clinical.UNIT_NAMES),
        "last_careunit": frames.categories(c.s_last_unit, clinical.UNIT_NAMES),
        "intime": frames.timestamps(c.s_in),
        "outtime": frames.timestamps(c.s_out),
        "los": np.round((c.s_out - c.s_in) / DAY, 4),
    })


_CODES = icd.dictionary_rows()
_CODE_INDEX = {(code, version): k for k, (code, version, _) in enumerate(_CODES)}
_MAX = max(len(v) for table in (icd.ICD9, icd.ICD10) for v in table.values())
# [icd10, condition, k] -> index into _CODES (-1 = no such code); count per [icd10, condition]
_COND = np.full((2, len(clinical.CONDITIONS), _MAX), -1)
_NCOND = np.zeros((2, len(clinical.CONDITIONS)), dtype=np.int64)
for _v, _table in ((0, icd.ICD9), (1, icd.ICD10)):
    for _j, _name in enumerate(clinical.CONDITIONS):
        _NCOND[_v, _j] = len(_table[_name])
        for _k, (_code, _) in enumerate(_table[_name]):
            _COND[_v, _j, _k] = _CODE_INDEX[(_code, 9 + _v)]
_FILL = np.array([[_CODE_INDEX[(f[0], 9)] for f in icd.FILLER],
                  [_CODE_INDEX[(f[2], 10)] for f in icd.FILLER]])


def diagnoses_icd(rng: np.random.Generator, c: Cohort) -> pl.DataFrame:
    """hosp/diagnoses_icd rows: codes of each coded condition, then unrelated filler codes."""
    adm, cond = np.nonzero(c.a_coded)
    v = c.a_icd10[adm].astype(np.int64)
    pick = (rng.random(len(adm)) * _NCOND[v, cond]).astype(np.int64)
    second = (cond == clinical.CONDITIONS.index("sepsis")) & (rng.random(len(adm)) < 0.5)
    chronic = np.isin(np.array(clinical.CONDITIONS)[cond], clinical.CHRONIC)
    n_fill = rng.poisson(np.where(c.a_icu, 9.0, 5.0))
    f_adm = np.repeat(np.arange(len(c.a_patient)), n_fill)
    f_code = _FILL[c.a_icd10[f_adm].astype(np.int64),
                   rng.integers(0, len(icd.FILLER), len(f_adm))]
    s_adm = adm[second]
    s_code = _COND[v[second], cond[second], (pick[second] + 1) % _NCOND[v[second], cond[second]]]
    all_adm = np.concatenate([adm, s_adm, f_adm])
    code = np.concatenate([_COND[v, cond, pick], s_code, f_code])
    group = np.concatenate([chronic.astype(int), np.zeros(len(s_adm), int),
                            np.full(len(f_adm), 2)])
    _, first = np.unique(all_adm * len(_CODES) + code, return_index=True)
    all_adm, code, group = all_adm[first], code[first], group[first]
    order = frames.stable_order(all_adm, group, rng.random(len(all_adm)))
    all_adm, code = all_adm[order], code[order]
    count = np.bincount(all_adm, minlength=len(c.a_patient))
    seq = np.arange(len(all_adm)) - np.repeat(np.cumsum(count) - count, count) + 1
    return frames.frame({
        "subject_id": c.p_subject[c.a_patient[all_adm]],
        "hadm_id": c.a_hadm[all_adm],
        "seq_num": seq,
        "icd_code": frames.categories(code, [r[0] for r in _CODES]),
        "icd_version": np.array([r[1] for r in _CODES], dtype=np.int16)[code],
    })
