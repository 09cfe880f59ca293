-- Title: diagnoses_icd — hosp/diagnoses_icd rebuilt from MEDS diagnosis events
-- Definition: one row per DIAGNOSIS//ICD//<version>//<code> event: icd_version and icd_code are
--   the code's third and fourth parts. hadm_id is the event's hadm_id column, else the subject's
--   latest admission with admittime <= the event's time (the MIMIC-IV -> MEDS ETL times
--   diagnoses at the admission's discharge).
-- Codes (codes.csv): DIAGNOSIS//ICD//9//<code>, DIAGNOSIS//ICD//10//<code> (diagnosis).
-- Inputs: meds_events, meds_codes, admissions.
WITH events AS (
    SELECT e.subject_id, e.time, e.hadm_id, e.code
    FROM meds_events AS e
    JOIN meds_codes AS c ON c.code = e.code
    WHERE c.kind = 'diagnosis' AND e.time IS NOT NULL
)
SELECT
    coalesce(d.hadm_id, a.hadm_id) AS hadm_id,
    split_part(d.code, '//', 4) AS icd_code,
    CAST(split_part(d.code, '//', 3) AS INTEGER) AS icd_version
FROM events AS d
ASOF LEFT JOIN admissions AS a ON a.subject_id = d.subject_id AND a.admittime <= d.time
