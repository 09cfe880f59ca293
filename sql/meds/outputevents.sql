-- Title: outputevents — icu/outputevents rebuilt from MEDS fluid output events
-- Definition: the output events of icu_events (SUBJECT_FLUID_OUTPUT//<itemid>//<unit>), with
--   their stay, itemid, charttime and value = numeric_value (mL).
-- Codes (codes.csv): SUBJECT_FLUID_OUTPUT//<itemid>//<unit> (output).
-- Inputs: icu_events.
SELECT stay_id, itemid, charttime, value
FROM icu_events
WHERE kind = 'output'
