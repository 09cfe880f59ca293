-- Title: chartevents — icu/chartevents rebuilt from MEDS charted events
-- Definition: the chart events of icu_events (LAB//<itemid>//<unit>, itemid >= 220000), with
--   their stay, itemid, charttime and valuenum = numeric_value.
-- Codes (codes.csv): LAB//<itemid>//<unit>, itemid >= 220000 (chart).
-- Inputs: icu_events.
SELECT stay_id, itemid, charttime, value AS valuenum
FROM icu_events
WHERE kind = 'chart'
