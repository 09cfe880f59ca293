-- Title: labs — laboratory values of eligible stays, mean per time bin
-- Definition: labevents rows charted in [intime, intime + hours) of an eligible stay, matched by
--   subject_id and time; a row whose hadm_id is set must also match the stay's hadm_id (rows with
--   NULL hadm_id, e.g. outpatient or pre-admission draws, are kept when the time matches). Only
--   numeric valuenum inside the plausibility range counts: text results with NULL valuenum
--   ('<0.5', 'ERROR', '___') are ignored rather than parsed, since a censored '<0.5' is not a
--   measurement of 0.5. Duplicates count once: mean over distinct (charttime, value) per feature.
-- Source: MIT-LCP/mimic-code mimic-iv/concepts measurement/chemistry.sql,
--   complete_blood_count.sql, coagulation.sql, enzyme.sql, bg.sql (lactate) for itemids and ranges.
-- Inputs: labevents, feature_items, stay_windows.
-- Itemids (source = labevents in sql/features.csv):
--   50912 -- creatinine
--   51006 -- urea nitrogen (BUN)
--   50983 -- sodium
--   50971 -- potassium
--   50902 -- chloride
--   50882 -- bicarbonate
--   50868 -- anion gap
--   50893 -- calcium, total
--   50931 -- glucose
--   50862 -- albumin
--   50813 -- lactate
--   50885 -- bilirubin, total
--   50861 -- ALT
--   50878 -- AST
--   51237 -- INR(PT)
--   51274 -- PT
--   51275 -- PTT
--   51301 -- white blood cells
--   51265 -- platelet count
--   51221 -- hematocrit
--   51222 -- hemoglobin
WITH items AS (
    SELECT itemid, feature_id, valid_low, valid_high, low_inclusive, high_inclusive, conversion
    FROM feature_items
    WHERE source = 'labevents'
), windows AS (
    SELECT stay_id, subject_id, hadm_id, intime, window_end
    FROM stay_windows
    WHERE eligible
), events AS (
    SELECT DISTINCT
        w.stay_id,
        i.feature_id,
        offset_us(l.charttime, w.intime) AS offset_us,
        to_target_unit(i.conversion, l.valuenum) AS value
    FROM labevents AS l
    JOIN items AS i ON i.itemid = l.itemid
    JOIN windows AS w ON w.subject_id = l.subject_id
    WHERE (l.hadm_id IS NULL OR l.hadm_id = w.hadm_id)
        AND l.charttime >= w.intime
        AND l.charttime < w.window_end
        AND in_valid_range(l.valuenum, i.valid_low, i.valid_high, i.low_inclusive, i.high_inclusive)
), binned AS (
    SELECT stay_id, offset_bin(offset_us) AS bin, feature_id, avg(value) AS value
    FROM events
    WHERE value IS NOT NULL
    GROUP BY ALL
)
SELECT b.stay_id, b.bin, n.feature, b.value
FROM binned AS b
JOIN (SELECT DISTINCT feature_id, feature FROM feature_items) AS n USING (feature_id)
