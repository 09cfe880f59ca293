-- Title: labels — the 12 diagnosis labels of each cohort stay (labels.parquet)
-- Definition: label = 1 when any diagnoses_icd row of the stay's admission (hadm_id) has an
--   icd_code (dots removed, upper case) starting with one of the label's prefixes for the same
--   icd_version (9 or 10), else 0. Prefixes: sql/labels.csv via label_codes.sql.
--   {{ label_columns }} expands to one TINYINT 0/1 column per label, in sql/labels.csv order:
--   coalesce(max(CAST(m.label = '<name>' AS TINYINT)), 0) AS <name>.
-- Source: HCUP CCS; Quan et al. 2005 (Med Care 43:1130) Elixhauser ICD-9/10 coding; mimic-code
--   explicit sepsis; see sql/labels.csv.
-- Inputs: diagnoses_icd, label_codes, cohort.
WITH diagnoses AS (
    SELECT DISTINCT
        d.hadm_id,
        d.icd_version,
        upper(replace(trim(d.icd_code), '.', '')) AS icd_code
    FROM diagnoses_icd AS d
    WHERE d.hadm_id IN (SELECT hadm_id FROM cohort)
), code_prefixes AS (
    SELECT
        hadm_id,
        icd_version,
        unnest(list_transform(range(1, length(icd_code) + 1), lambda n: icd_code[:n])) AS prefix
    FROM diagnoses
), matches AS (
    SELECT DISTINCT p.hadm_id, l.label
    FROM code_prefixes AS p
    JOIN label_codes AS l ON l.icd_version = p.icd_version AND l.prefix = p.prefix
)
SELECT
    c.stay_id,
    c.subject_id,
    {{ label_columns }}
FROM cohort AS c
LEFT JOIN matches AS m ON m.hadm_id = c.hadm_id
GROUP BY c.stay_id, c.subject_id
ORDER BY c.stay_id
