"""The clinical model: prevalences, correlations, care-unit case-mix, ICD coding, physiology."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from crypten_fl.mimic_etl.synth import clinical, icd
from crypten_fl.mimic_etl.synth.chunks import build_chunk
from crypten_fl.mimic_etl.synth.cohort import Cohort, build_cohort
from crypten_fl.mimic_etl.synth.physiology import simulate
from helpers.synth import read, release, signal_bench

LABELS = clinical.LABELS


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return build_cohort(np.random.default_rng(11), 0, 20_000, 5_000, 5)


def _col(name: str) -> int:
    return clinical.CONDITIONS.index(name)


def _unit(code: str) -> int:
    return [u.code for u in clinical.CARE_UNITS].index(code)


def test_prevalences_match_the_targets(cohort: Cohort) -> None:
    icu = cohort.a_icu
    for name in LABELS:
        true = cohort.a_has[icu, _col(name)].mean()
        assert abs(true - clinical.RISKS[name].prevalence) < 0.04, name
        coded = cohort.a_coded[icu, _col(name)].mean()
        assert 0.08 <= coded <= 0.65, name
    coded = {n: cohort.a_coded[icu, _col(n)].mean() for n in LABELS}
    ranked = sorted(coded, key=coded.get)
    assert ranked[-1] == "hypertension"
    assert {"malnutrition", "pneumonia"} <= set(ranked[:3])


def test_non_icu_admissions_are_less_acutely_ill(cohort: Cohort) -> None:
    for name in ("sepsis", "respiratory_failure", "aki"):
        j = _col(name)
        assert cohort.a_has[~cohort.a_icu, j].mean() < 0.3 * cohort.a_has[cohort.a_icu, j].mean()


def _odds_ratio(a: np.ndarray, b: np.ndarray) -> float:
    n11, n10 = (a & b).sum(), (a & ~b).sum()
    n01, n00 = (~a & b).sum(), (~a & ~b).sum()
    return (n11 * n00) / max(n10 * n01, 1)


@pytest.mark.parametrize("a, b", [
    ("sepsis", "pneumonia"), ("sepsis", "uti"), ("sepsis", "aki"),
    ("sepsis", "respiratory_failure"), ("diabetes", "hypertension"), ("diabetes", "ckd"),
    ("ckd", "heart_failure"), ("hypertension", "heart_failure"),
    ("liver_disease", "malnutrition"),
])
def test_conditions_are_correlated(cohort: Cohort, a: str, b: str) -> None:
    icu = cohort.a_icu
    assert _odds_ratio(cohort.a_has[icu, _col(a)], cohort.a_has[icu, _col(b)]) > 1.8


def test_care_units_have_distinct_case_mix(cohort: Cohort) -> None:
    first = cohort.s_adm[np.r_[True, np.diff(cohort.s_adm) != 0]]
    unit = cohort.a_unit[first]

    def share(condition: str, *codes: str) -> float:
        mask = np.isin(unit, [_unit(c) for c in codes])
        return cohort.a_has[first[mask], _col(condition)].mean()

    assert share("sepsis", "MICU") > 2 * share("sepsis", "CVICU")
    assert share("heart_failure", "CCU") > 1.5 * share("heart_failure", "MICU")
    neuro = ("Neuro Intermediate", "Neuro SICU", "Neuro Stepdown")
    assert share("neurological", *neuro) > 2 * share("neurological", "MICU", "SICU", "CVICU")
    shares = np.bincount(unit, minlength=len(clinical.CARE_UNITS)) / len(unit)
    expected = np.array([u.share for u in clinical.CARE_UNITS])
    assert np.abs(shares - expected).max() < 0.02


def test_about_a_quarter_more_stays_than_icu_patients(cohort: Cohort) -> None:
    icu_patients = cohort.p_icu.sum()
    assert 1.18 < len(cohort.s_adm) / icu_patients < 1.32
    per_patient = np.bincount(cohort.a_patient[cohort.s_adm], minlength=cohort.n_patients)
    assert 0.17 < (per_patient[cohort.p_icu] >= 2).mean() < 0.27
    assert (per_patient[~cohort.p_icu] == 0).all()


def test_icd_version_follows_anchor_year_group(cohort: Cohort) -> None:
    group = cohort.p_group[cohort.a_patient]
    icd10 = [cohort.a_icd10[group == g].mean() for g in range(5)]
    assert icd10[0] < 0.1 and icd10[1] < 0.25
    assert 0.2 < icd10[2] < 0.85
    assert icd10[3] > 0.97 and icd10[4] > 0.99


def _matches(code: str, prefixes: tuple[str, ...]) -> bool:
    return any(code.startswith(p) for p in prefixes)


def test_condition_codes_match_their_own_label_only() -> None:
    prefixes = signal_bench().label_prefixes()
    assert list(prefixes) == list(LABELS)
    for version, table in ((9, icd.ICD9), (10, icd.ICD10)):
        for condition, codes in table.items():
            for code, _ in codes:
                hits = {lab for lab in LABELS if _matches(code, prefixes[lab][version])}
                assert hits == ({condition} if condition in LABELS else set()), code
    for code9, _, code10, _ in icd.FILLER:
        for lab in LABELS:
            assert not _matches(code9, prefixes[lab][9]) and not _matches(code10, prefixes[lab][10])


def test_written_codes_use_one_version_per_admission(tmp_path_factory: pytest.TempPathFactory
                                                     ) -> None:
    root: Path = release(tmp_path_factory)
    dx = read(root, "diagnoses_icd")
    versions = dx.group_by("hadm_id").agg(pl.col("icd_version").n_unique())
    assert (versions["icd_version"] == 1).all()
    adm = read(root, "admissions").join(read(root, "patients"), on="subject_id")
    by_group = dx.join(adm.select("hadm_id", "anchor_year_group"), on="hadm_id").group_by(
        "anchor_year_group").agg((pl.col("icd_version") == "10").mean().alias("icd10"))
    share = dict(zip(by_group["anchor_year_group"], by_group["icd10"], strict=True))
    assert share["2008 - 2010"] < 0.2 and share["2017 - 2019"] > 0.9
    seq = dx.group_by("hadm_id").agg(pl.col("seq_num").cast(pl.Int64).sort())
    assert all(s.to_list() == list(range(1, len(s) + 1)) for s in seq["seq_num"])


@pytest.fixture(scope="module")
def chunk():
    return build_chunk(3, 0, 200, "3.1")


# condition, latent channel, expected sign of (with - without) 24 h after ICU admission
DIRECTIONS = [
    ("ckd", "creatinine", 1), ("aki", "creatinine", 1), ("sepsis", "lactate", 1),
    ("sepsis", "hr", 1), ("diabetes", "glucose", 1), ("liver_disease", "bilirubin", 1),
    ("liver_disease", "albumin", -1), ("malnutrition", "albumin", -1),
    ("malnutrition", "weight", -1), ("neurological", "gcs", -1), ("hypertension", "sbp", 1),
    ("respiratory_failure", "spo2", -1), ("respiratory_failure", "fio2", 1),
    ("heart_failure", "weight", 1), ("pneumonia", "temp", 1), ("uti", "wbc", 1),
]


@pytest.mark.parametrize("condition, channel, sign", DIRECTIONS)
def test_conditions_shift_the_expected_features(chunk, condition: str, channel: str,
                                                sign: int) -> None:
    c, ph = chunk.cohort, chunk.physiology
    adm = np.nonzero(c.a_icu)[0]
    value = ph.at(channel, adm, c.a_tref[adm] + 24)
    has = c.a_has[adm, _col(condition)]
    assert sign * (value[has].mean() - value[~has].mean()) > 0


def test_aki_creatinine_rises_while_ckd_stays_flat() -> None:
    c = build_cohort(np.random.default_rng(4), 0, 1500, 0, 5)
    ph = simulate(np.random.default_rng(5), c)
    adm = np.nonzero(c.a_icu)[0]
    rise = ph.at("creatinine", adm, c.a_tref[adm] + 48) - ph.at("creatinine", adm, c.a_tref[adm])
    aki = c.a_has[adm, _col("aki")] & (c.a_onset[adm, _col("aki")] > c.a_tref[adm])
    ckd_only = c.a_has[adm, _col("ckd")] & ~c.a_has[adm, _col("aki")]
    assert rise[aki].mean() > 0.15
    assert abs(rise[ckd_only].mean()) < 0.1
