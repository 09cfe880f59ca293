-- Title: medications — drug classes active per time bin (prescriptions, by drug name)
-- Definition: a prescription of the stay's admission is active in bin b when
--   starttime < bin end and stoptime > bin start; an order with NULL or non-positive duration
--   (stoptime missing or <= starttime) counts in the bin of its starttime only. Orders for topical,
--   eye and ear routes and base solutions (drug_type 'BASE') are excluded, as in mimic-code's
--   antibiotic concept. A drug belongs to a class when lower(drug) contains one of the class's
--   include patterns and none of its exclude patterns (sql/drug_classes.csv). The output holds one
--   row (value 1) per active (stay, bin, class); the grid fills the other bins with 0.
-- Source: MIT-LCP/mimic-code mimic-iv/concepts medication/antibiotic.sql (antibiotic names, route
--   exclusions); other classes crypten-fl (sql/drug_classes.csv).
-- Inputs: prescriptions, drug_patterns, stay_windows; session variable n_bins.
WITH windows AS (
    SELECT stay_id, hadm_id, intime, window_end
    FROM stay_windows
    WHERE eligible
), orders AS MATERIALIZED (
    SELECT
        w.stay_id,
        w.intime,
        lower(p.drug) AS drug,
        p.starttime,
        CASE
            WHEN p.stoptime > p.starttime THEN p.stoptime
            ELSE p.starttime + INTERVAL 1 SECOND
        END AS stoptime
    FROM prescriptions AS p
    JOIN windows AS w ON w.hadm_id = p.hadm_id
    WHERE p.drug IS NOT NULL
        AND p.starttime < w.window_end
        AND coalesce(p.drug_type, '') <> 'BASE'
        AND coalesce(p.route, '') NOT IN ('OU', 'OS', 'OD', 'AU', 'AS', 'AD', 'TP')
        AND lower(coalesce(p.route, '')) NOT LIKE '%ear%'
        AND lower(coalesce(p.route, '')) NOT LIKE '%eye%'
), drug_classes AS (
    SELECT DISTINCT d.drug, inc.feature
    FROM (SELECT DISTINCT drug FROM orders) AS d
    JOIN drug_patterns AS inc ON inc.match = 'include' AND contains(d.drug, inc.pattern)
    WHERE NOT EXISTS (
        SELECT 1
        FROM drug_patterns AS exc
        WHERE exc.match = 'exclude'
            AND exc.feature = inc.feature
            AND contains(d.drug, exc.pattern)
    )
), active AS (
    SELECT
        o.stay_id,
        c.feature,
        greatest(epoch_us(o.starttime) - epoch_us(o.intime), 0) // bin_microseconds() AS first_bin,
        least(
            (epoch_us(o.stoptime) - epoch_us(o.intime) + bin_microseconds() - 1) // bin_microseconds(),
            getvariable('n_bins')
        ) - 1 AS last_bin
    FROM orders AS o
    JOIN drug_classes AS c ON c.drug = o.drug
    WHERE o.stoptime > o.intime
)
SELECT DISTINCT
    stay_id,
    CAST(unnest(range(first_bin, last_bin + 1)) AS SMALLINT) AS bin,
    feature,
    CAST(1 AS DOUBLE) AS value
FROM active
