-- Title: icu_events — MEDS events charted in the ICU, each assigned to an ICU stay
-- Definition: one row per event of kind chart (LAB//<itemid>//<unit> with itemid >= 220000: the
--   MIMIC-IV -> MEDS ETL writes charted items as LAB codes) or output
--   (SUBJECT_FLUID_OUTPUT//<itemid>//<unit>): itemid = the code's second part, charttime = time,
--   value = numeric_value. stay_id is the event's stay_id column, else the subject's latest ICU
--   stay with intime <= the event's time (an ASOF join, only for events without
--   stay_id). chartevents.sql and outputevents.sql split it by kind.
-- Codes (codes.csv): LAB//<itemid>//<unit>, itemid >= 220000 (chart);
--   SUBJECT_FLUID_OUTPUT//<itemid>//<unit> (output).
-- Inputs: meds_events, meds_codes, icustays.
WITH events AS (
    SELECT e.subject_id, e.stay_id, e.code, e.time, e.numeric_value, c.kind
    FROM meds_events AS e
    JOIN meds_codes AS c ON c.code = e.code
    WHERE c.kind IN ('chart', 'output') AND e.time IS NOT NULL
)
SELECT kind, stay_id, CAST(split_part(code, '//', 2) AS INTEGER) AS itemid, time AS charttime,
    numeric_value AS value
FROM events
WHERE stay_id IS NOT NULL
UNION ALL
SELECT
    v.kind,
    s.stay_id,
    CAST(split_part(v.code, '//', 2) AS INTEGER) AS itemid,
    v.time AS charttime,
    v.numeric_value AS value
FROM (SELECT * FROM events WHERE stay_id IS NULL) AS v
ASOF LEFT JOIN icustays AS s ON s.subject_id = v.subject_id AND s.intime <= v.time
