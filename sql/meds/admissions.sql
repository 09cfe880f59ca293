-- Title: admissions — hosp/admissions rebuilt from MEDS hospital admission events
-- Definition: one row per HOSPITAL_ADMISSION event: admittime = its time, admission_type = the
--   second part of its code. hadm_id is the event's hadm_id column when the shards have one, else
--   20000000 + the admission's rank by (subject_id, admittime). insurance and race are the
--   INSURANCE//<x> and RACE//<x> events of the same subject at the admission's time (or of the
--   same hadm_id when the shards carry it).
-- Codes (codes.csv): HOSPITAL_ADMISSION//<type>//<location> (admission), INSURANCE//<x>,
--   RACE//<x>.
-- Inputs: meds_events, meds_codes.
WITH events AS (
    SELECT e.subject_id, e.time, e.hadm_id, c.kind, e.code
    FROM meds_events AS e
    JOIN meds_codes AS c ON c.code = e.code
    WHERE c.kind IN ('admission', 'insurance', 'race') AND e.time IS NOT NULL
), admits AS (
    SELECT
        subject_id,
        time AS admittime,
        coalesce(hadm_id, 20000000 + row_number() OVER (ORDER BY subject_id, time)) AS hadm_id,
        hadm_id AS source_hadm_id,
        nullif(split_part(code, '//', 2), '') AS admission_type
    FROM events
    WHERE kind = 'admission'
), attributes AS (
    SELECT subject_id, time, hadm_id, kind, regexp_extract(code, '^[^/]+//(.*)$', 1) AS value
    FROM events
    WHERE kind IN ('insurance', 'race')
)
SELECT
    a.subject_id,
    a.hadm_id,
    a.admittime,
    a.admission_type,
    max(t.value) FILTER (WHERE t.kind = 'insurance') AS insurance,
    max(t.value) FILTER (WHERE t.kind = 'race') AS race
FROM admits AS a
LEFT JOIN attributes AS t
    ON t.subject_id = a.subject_id
    AND (t.hadm_id = a.source_hadm_id OR (t.hadm_id IS NULL AND t.time = a.admittime))
GROUP BY a.subject_id, a.hadm_id, a.admittime, a.admission_type
