-- Title: timeseries — the complete (stay, bin) grid with one value and one mask per feature
-- Definition: n_bins = hours / bin_hours rows per cohort stay, bin b covering
--   [intime + b * bin_hours, intime + (b + 1) * bin_hours), sorted by stay_id, bin. Values are the
--   bin means (vitals, labs), sums (urine, mL) or 0/1 flags (medications) built by vitals.sql,
--   labs.sql, urine.sql and medications.sql; nothing is imputed or normalised.
--   The grid is widened by one LEFT JOIN per feature rather than one GROUP BY with a FILTER
--   aggregate per feature: at full MIMIC-IV scale the aggregate holds ~40 states for each of
--   2.3 M (stay, bin) groups (7.7 GB measured), the joins only the observed cells (2 GB).
--   {{ feature_joins }} expands, per feature <f> of sql/features.csv stored in relation <r>
--   (vitals, labs, urine or medications by its group), to
--     LEFT JOIN (SELECT stay_id, bin, value FROM <r> WHERE feature = '<f>') AS <f>_cells
--         ON <f>_cells.stay_id = g.stay_id AND <f>_cells.bin = g.bin
--   and {{ feature_columns }} to, in the same order,
--     CAST(<f>_cells.value AS FLOAT) AS <f>, CAST(<f>_cells.value IS NOT NULL AS UTINYINT)
--     AS <f>_mask for measured features, and for medication flags (always known: no active order
--     means 0) CAST(coalesce(<f>_cells.value, 0) AS FLOAT) AS <f>, CAST(1 AS UTINYINT) AS <f>_mask.
-- Source: crypten-fl (docs/data-contracts.md).
-- Inputs: cohort, vitals, labs, urine, medications (through the placeholders); variable n_bins.
WITH grid AS (
    SELECT c.stay_id, CAST(b.bin AS SMALLINT) AS bin
    FROM cohort AS c
    CROSS JOIN range(getvariable('n_bins')) AS b(bin)
)
SELECT
    CAST(g.stay_id AS BIGINT) AS stay_id,
    g.bin,
    {{ feature_columns }}
FROM grid AS g
{{ feature_joins }}
ORDER BY g.stay_id, g.bin
