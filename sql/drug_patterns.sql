-- Title: drug_patterns — drug-name substrings defining the medication features
-- Definition: one row per (feature, include/exclude, pattern) of sql/drug_classes.csv. An order
--   belongs to a medication feature when lower(drug) contains one of the feature's include patterns
--   and none of its exclude patterns (see medications.sql).
-- Source: sql/drug_classes.csv (antibiotics: mimic-code medication/antibiotic.sql; others crypten-fl).
-- Inputs: sql/drug_classes.csv (session variable drug_classes_csv).
SELECT
    feature,
    CASE
        WHEN match NOT IN ('include', 'exclude')
        THEN error('sql/drug_classes.csv: match must be include or exclude, got ''' || match || '''')
        ELSE match
    END AS match,
    lower(trim(pattern)) AS pattern
FROM read_csv(
    getvariable('drug_classes_csv'), header = true, auto_detect = false,
    delim = ',', quote = '"', escape = '"',
    columns = {'feature': 'VARCHAR', 'match': 'VARCHAR', 'pattern': 'VARCHAR', 'source': 'VARCHAR'}
)
WHERE coalesce(trim(pattern), '') <> ''
