-- Title: feature_items — measured itemids mapped to output features
-- Definition: one row per itemid of sql/features.csv (rows without an itemid are medication
--   features, defined by drug name in drug_patterns.sql). feature_id numbers the features in file
--   order (a 1-byte key keeps the de-duplication of events compact). valid_range uses interval notation on the
--   raw charted value: '(' / ')' exclusive, '[' / ']' inclusive, an empty bound is unbounded,
--   e.g. '(0, 300)' or '[0, )'. conversion is one of the names handled by to_target_unit()
--   (macros.sql) or empty. A malformed row stops the run with an error naming sql/features.csv.
-- Source: sql/features.csv; each row cites its source (mimic-code concepts or crypten-fl).
-- Inputs: sql/features.csv (session variable features_csv).
WITH raw AS (
    SELECT *, row_number() OVER () AS row_order
    FROM read_csv(
        getvariable('features_csv'), header = true, auto_detect = false,
        delim = ',', quote = '"', escape = '"',
        columns = {
            'feature': 'VARCHAR', 'group': 'VARCHAR', 'unit': 'VARCHAR', 'source': 'VARCHAR',
            'itemid': 'INTEGER', 'item_label': 'VARCHAR', 'valid_range': 'VARCHAR',
            'conversion': 'VARCHAR', 'reference': 'VARCHAR'
        }
    )
), feature_order AS (
    SELECT feature, CAST(row_number() OVER (ORDER BY min(row_order)) AS UTINYINT) AS feature_id
    FROM raw
    GROUP BY feature
), numbered AS (
    SELECT raw.*, feature_order.feature_id
    FROM raw
    JOIN feature_order USING (feature)
), checked AS (
    SELECT
        *,
        trim(coalesce(valid_range, '')) AS range_text,
        regexp_extract(trim(coalesce(valid_range, '')), '^([\[(])\s*([^,]*?)\s*,\s*([^,]*?)\s*([\])])$', ['open', 'low', 'high', 'close']) AS bounds
    FROM numbered
    WHERE itemid IS NOT NULL
)
SELECT
    itemid,
    feature_id,
    feature,
    "group" AS feature_group,
    unit,
    source,
    item_label,
    CASE
        WHEN bounds.open = '' THEN error('sql/features.csv: itemid ' || itemid || ' has malformed valid_range ''' || range_text || ''' (expected e.g. (0, 300) or [0, ))')
        ELSE CAST(nullif(bounds.low, '') AS DOUBLE)
    END AS valid_low,
    CAST(nullif(bounds.high, '') AS DOUBLE) AS valid_high,
    bounds.open = '[' AS low_inclusive,
    bounds.close = ']' AS high_inclusive,
    CASE
        WHEN coalesce(conversion, '') NOT IN ('', 'fahrenheit_to_celsius', 'fraction_to_percent', 'negate')
        THEN error('sql/features.csv: itemid ' || itemid || ' has unknown conversion ''' || conversion || '''')
        ELSE nullif(conversion, '')
    END AS conversion
FROM checked
