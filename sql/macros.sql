-- Title: macros — small scalar helpers shared by the concept files
-- Definition:
--   in_valid_range(v, low, high, low_inclusive, high_inclusive): plausibility filter on a raw value;
--     a NULL bound means unbounded (ranges come from sql/features.csv, see feature_items.sql).
--   to_target_unit(conversion, v): unit harmonisation applied after the range check:
--     'fahrenheit_to_celsius' (v - 32) / 1.8                       -- mimic-code vitalsign.sql
--     'fraction_to_percent'   v <= 1 -> v * 100; 1 < v < 20 -> NULL
--                             (ambiguous, looks like O2 flow); else v -- mimic-code bg.sql stg_fio2
--     'negate'                -v (GU irrigant volume in)           -- mimic-code urine_output.sql
--     NULL                    v unchanged
--   offset_us(t, t0): microseconds from t0 to t (BIGINT).
--   offset_bin(us): 0-based bin of an offset, bins of getvariable('bin_hours') hours; integer
--     arithmetic, so bin b covers exactly [b * bin_hours, (b + 1) * bin_hours) after t0.
--   time_bin(t, t0) = offset_bin(offset_us(t, t0)).
-- Source: crypten-fl; conversions as in MIT-LCP/mimic-code mimic-iv/concepts (cited above).
-- Inputs: session variables set by the runner (bin_hours).
CREATE OR REPLACE MACRO in_valid_range(v, low, high, low_inclusive, high_inclusive) AS
    (low IS NULL OR v > low OR (low_inclusive AND v = low))
    AND (high IS NULL OR v < high OR (high_inclusive AND v = high));

CREATE OR REPLACE MACRO to_target_unit(conversion, v) AS
    CASE conversion
        WHEN 'fahrenheit_to_celsius' THEN (v - 32) / 1.8
        WHEN 'fraction_to_percent' THEN
            CASE WHEN v <= 1 THEN v * 100 WHEN v < 20 THEN NULL ELSE v END
        WHEN 'negate' THEN -v
        ELSE v
    END;

CREATE OR REPLACE MACRO bin_microseconds() AS
    CAST(getvariable('bin_hours') AS BIGINT) * 3600 * 1000000;

CREATE OR REPLACE MACRO offset_us(t, t0) AS epoch_us(t) - epoch_us(t0);

CREATE OR REPLACE MACRO offset_bin(us) AS CAST(us // bin_microseconds() AS SMALLINT);

CREATE OR REPLACE MACRO time_bin(t, t0) AS offset_bin(offset_us(t, t0));
