-- Title: patients — hosp/patients rebuilt from MEDS static and birth events
-- Definition: one row per subject_id with any event. gender = the last part of GENDER//<g>;
--   MEDS_BIRTH gives the year of birth, kept as anchor_year = year(birth), anchor_age = 0, so
--   stay_windows.sql's age (anchor_age + year(admittime) - anchor_year) is year(admittime) -
--   year(birth), the MIMIC-IV age (the MIMIC-IV -> MEDS ETL puts MEDS_BIRTH on 1 January of
--   anchor_year - anchor_age). anchor_year_group is not in MEDS: NULL.
-- Codes (codes.csv): MEDS_BIRTH (birth), GENDER//<M|F> (gender).
-- Inputs: meds_events, meds_codes.
SELECT
    e.subject_id,
    max(CASE WHEN c.kind = 'gender' THEN split_part(e.code, '//', 2) END) AS gender,
    CAST(0 AS INTEGER) AS anchor_age,
    CAST(min(CASE WHEN c.kind = 'birth' THEN year(e.time) END) AS INTEGER) AS anchor_year,
    CAST(NULL AS VARCHAR) AS anchor_year_group
FROM meds_events AS e
LEFT JOIN meds_codes AS c ON c.code = e.code AND c.kind IN ('gender', 'birth')
GROUP BY e.subject_id
