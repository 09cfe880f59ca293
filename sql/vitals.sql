-- Title: vitals — bedside measurements of eligible stays, mean per time bin
-- Definition: chartevents rows of eligible stays (stay_windows.eligible) charted in
--   [intime, intime + hours), with a numeric valuenum inside the itemid's plausibility range,
--   converted to the feature's unit (sql/features.csv via feature_items). Text-only rows (valuenum
--   NULL, e.g. '___') are ignored. Several itemids feed one feature (non-invasive and arterial blood
--   pressure are merged; °F and °C temperatures are merged in °C). Duplicates are counted once: the
--   bin mean is over distinct (charttime, value) pairs of the feature.
-- Source: MIT-LCP/mimic-code mimic-iv/concepts measurement/vitalsign.sql (ranges, °F -> °C),
--   measurement/gcs.sql, measurement/bg.sql (FiO2), demographics/weight_durations.sql (weight).
-- Inputs: chartevents, feature_items, stay_windows.
-- Itemids (source = chartevents in sql/features.csv):
--   220045 -- heart rate
--   220179 -- systolic BP, non-invasive
--   220050 -- systolic BP, arterial
--   225309 -- systolic BP, arterial (ART BP)
--   220180 -- diastolic BP, non-invasive
--   220051 -- diastolic BP, arterial
--   225310 -- diastolic BP, arterial (ART BP)
--   220181 -- mean BP, non-invasive
--   220052 -- mean BP, arterial
--   225312 -- mean BP, arterial (ART BP)
--   220210 -- respiratory rate
--   224690 -- respiratory rate (total)
--   220277 -- SpO2, pulse oximetry
--   223762 -- temperature, °C
--   223761 -- temperature, °F (converted to °C)
--   225664 -- glucose, finger stick
--   220621 -- glucose, serum (charted)
--   226537 -- glucose, whole blood (charted)
--   220739 -- GCS eye opening
--   223900 -- GCS verbal response
--   223901 -- GCS motor response
--   223835 -- FiO2 (fractions <= 1 converted to %)
--   226512 -- admission weight, kg
--   224639 -- daily weight, kg
WITH items AS (
    SELECT itemid, feature_id, valid_low, valid_high, low_inclusive, high_inclusive, conversion
    FROM feature_items
    WHERE source = 'chartevents'
), windows AS (
    SELECT stay_id, intime, window_end
    FROM stay_windows
    WHERE eligible
), events AS (
    SELECT DISTINCT
        c.stay_id,
        i.feature_id,
        offset_us(c.charttime, w.intime) AS offset_us,
        to_target_unit(i.conversion, c.valuenum) AS value
    FROM chartevents AS c
    JOIN items AS i ON i.itemid = c.itemid
    JOIN windows AS w ON w.stay_id = c.stay_id
    WHERE c.charttime >= w.intime
        AND c.charttime < w.window_end
        AND in_valid_range(c.valuenum, i.valid_low, i.valid_high, i.low_inclusive, i.high_inclusive)
), binned AS (
    SELECT stay_id, offset_bin(offset_us) AS bin, feature_id, avg(value) AS value
    FROM events
    WHERE value IS NOT NULL
    GROUP BY ALL
)
SELECT b.stay_id, b.bin, n.feature, b.value
FROM binned AS b
JOIN (SELECT DISTINCT feature_id, feature FROM feature_items) AS n USING (feature_id)
