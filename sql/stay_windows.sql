-- Title: stay_windows — every ICU stay with its admission, patient, window and cohort criteria
-- Definition: one row per icu/icustays row. Observation window = [intime, intime + hours).
--   age = anchor_age + year(admittime) - anchor_year (MIMIC-IV shifts dates per patient; the
--   anchor fields are the documented way to recover age at admission).
--   los_hours = outtime - intime in hours (icustays.los * 24 when outtime is missing).
--   The pass_* flags are cumulative, in cohort-flow order:
--     pass_admission  the stay's hadm_id is in hosp/admissions
--     pass_patient    ... and its subject_id is in hosp/patients
--     pass_age        ... and age >= min_age
--     pass_first_stay ... and it is the admission's first ICU stay (earliest intime; labels are
--                     per admission, so later stays would repeat the same labels)
--     pass_los        ... and los_hours >= min_los_hours (when min_los_hours is set)
--   eligible = pass_los; cohort.sql adds "at least one observation in the window".
-- Source: MIMIC-IV documentation (patients.anchor_*); mimic-code demographics/age.sql.
-- Inputs: icustays, admissions, patients; session variables hours, min_age, min_los_hours.
WITH joined AS (
    SELECT
        i.stay_id,
        i.subject_id,
        i.hadm_id,
        i.first_careunit,
        i.intime,
        i.outtime,
        i.los,
        a.hadm_id IS NOT NULL AS has_admission,
        p.subject_id IS NOT NULL AS has_patient,
        a.admittime,
        a.admission_type,
        a.insurance,
        a.race,
        p.gender,
        p.anchor_age,
        p.anchor_year,
        p.anchor_year_group
    FROM icustays AS i
    LEFT JOIN admissions AS a ON a.hadm_id = i.hadm_id
    LEFT JOIN patients AS p ON p.subject_id = i.subject_id
), derived AS (
    SELECT
        *,
        CAST(anchor_age + year(admittime) - anchor_year AS DOUBLE) AS age,
        coalesce((epoch_us(outtime) - epoch_us(intime)) / 3.6e9, los * 24) AS los_hours,
        row_number() OVER (PARTITION BY hadm_id ORDER BY intime, stay_id) = 1 AS is_first_stay,
        intime + to_hours(CAST(getvariable('hours') AS BIGINT)) AS window_end
    FROM joined
)
SELECT
    *,
    has_admission AND intime IS NOT NULL AS pass_admission,
    pass_admission AND has_patient AS pass_patient,
    pass_patient AND coalesce(age >= getvariable('min_age'), false) AS pass_age,
    pass_age AND is_first_stay AS pass_first_stay,
    pass_first_stay AND (
        getvariable('min_los_hours') IS NULL
        OR coalesce(los_hours >= getvariable('min_los_hours'), false)
    ) AS pass_los,
    pass_los AS eligible
FROM derived
