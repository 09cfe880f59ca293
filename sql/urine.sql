-- Title: urine — urine output of eligible stays, sum per time bin (mL)
-- Definition: outputevents rows of eligible stays charted in [intime, intime + hours) with a numeric
--   value >= 0 mL; GU irrigant volume in (227488) is subtracted, as in mimic-code. The bin value is
--   the sum over distinct (itemid, charttime, value) rows, so a row stored twice counts once. A bin
--   with any charted output is observed (its sum may be 0); a bin without is NULL / unobserved.
-- Source: MIT-LCP/mimic-code mimic-iv/concepts measurement/urine_output.sql (itemids, irrigant
--   sign); the ">= 0 mL" plausibility filter is crypten-fl's.
-- Inputs: outputevents, feature_items, stay_windows.
-- Itemids (source = outputevents in sql/features.csv):
--   226559 -- Foley
--   226560 -- Void
--   226561 -- Condom Cath
--   226584 -- Ileoconduit
--   226563 -- Suprapubic
--   226564 -- R Nephrostomy
--   226565 -- L Nephrostomy
--   226567 -- Straight Cath
--   226557 -- R Ureteral Stent
--   226558 -- L Ureteral Stent
--   227488 -- GU Irrigant Volume In (subtracted)
--   227489 -- GU Irrigant/Urine Volume Out
WITH items AS (
    SELECT itemid, feature_id, valid_low, valid_high, low_inclusive, high_inclusive, conversion
    FROM feature_items
    WHERE source = 'outputevents'
), windows AS (
    SELECT stay_id, intime, window_end
    FROM stay_windows
    WHERE eligible
), events AS (
    SELECT DISTINCT
        o.stay_id,
        i.feature_id,
        o.itemid,
        offset_us(o.charttime, w.intime) AS offset_us,
        to_target_unit(i.conversion, o.value) AS value
    FROM outputevents AS o
    JOIN items AS i ON i.itemid = o.itemid
    JOIN windows AS w ON w.stay_id = o.stay_id
    WHERE o.charttime >= w.intime
        AND o.charttime < w.window_end
        AND in_valid_range(o.value, i.valid_low, i.valid_high, i.low_inclusive, i.high_inclusive)
), binned AS (
    SELECT stay_id, offset_bin(offset_us) AS bin, feature_id, sum(value) AS value
    FROM events
    WHERE value IS NOT NULL
    GROUP BY stay_id, bin, feature_id
)
SELECT b.stay_id, b.bin, n.feature, b.value
FROM binned AS b
JOIN (SELECT DISTINCT feature_id, feature FROM feature_items) AS n USING (feature_id)
