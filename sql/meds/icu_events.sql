-- Title: icu_events — MEDS events charted in the ICU, each assigned to an ICU stay
-- Definition: one row per event of kind chart (LAB//<itemid>//<unit> with itemid >= 220000: the
--   MIMIC-IV -> MEDS ETL writes charted items as LAB codes) or output
--   (SUBJECT_FLUID_OUTPUT//<itemid>//<unit>): itemid = the code's second part, charttime = time,
--   value = numeric_value. stay_id is the event's stay_id column, else the subject's latest ICU
--   stay with intime <= the event's time: the stay whose [intime, next stay's intime) holds the
--   event (a hash join on subject_id, so the events stream through it; only events without
--   stay_id are matched). chartevents.sql and outputevents.sql split it by kind.
-- Codes (codes.csv): LAB//<itemid>//<unit>, itemid >= 220000 (chart);
--   SUBJECT_FLUID_OUTPUT//<itemid>//<unit> (output).
-- Inputs: meds_events, meds_codes, icustays.
WITH stays AS (
    SELECT
        subject_id,
        stay_id,
        intime,
        lead(intime) OVER (PARTITION BY subject_id ORDER BY intime, stay_id) AS next_intime
    FROM icustays
)
SELECT
    c.kind,
    coalesce(e.stay_id, s.stay_id) AS stay_id,
    CAST(split_part(e.code, '//', 2) AS INTEGER) AS itemid,
    e.time AS charttime,
    e.numeric_value AS value
FROM meds_events AS e
JOIN meds_codes AS c ON c.code = e.code
LEFT JOIN stays AS s
    ON s.subject_id = CASE WHEN e.stay_id IS NULL THEN e.subject_id END
    AND s.intime <= e.time
    AND (s.next_intime IS NULL OR e.time < s.next_intime)
WHERE c.kind IN ('chart', 'output') AND e.time IS NOT NULL
