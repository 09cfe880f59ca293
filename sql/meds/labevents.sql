-- Title: labevents — hosp/labevents rebuilt from MEDS laboratory events
-- Definition: one row per LAB//<itemid>//<unit> event with itemid < 220000: itemid = the code's
--   second part, charttime = time, valuenum = numeric_value (NULL for a text-only result).
--   hadm_id is the event's hadm_id column when present, else NULL: labs.sql then matches the
--   event to a stay by subject and time only, as it does for MIMIC-IV rows without hadm_id.
-- Codes (codes.csv): LAB//<itemid>//<unit>, itemid < 220000 (lab).
-- Inputs: meds_events, meds_codes.
SELECT
    e.subject_id,
    e.hadm_id,
    CAST(split_part(e.code, '//', 2) AS INTEGER) AS itemid,
    e.time AS charttime,
    e.numeric_value AS valuenum
FROM meds_events AS e
JOIN meds_codes AS c ON c.code = e.code
WHERE c.kind = 'lab' AND e.time IS NOT NULL
