-- Title: label_codes — ICD-9-CM / ICD-10-CM code prefixes of the 12 labels
-- Definition: one row per (label, icd_version, prefix). sql/labels.csv lists, per label, prefixes
--   separated by spaces; 'A-B' is a range of prefixes of equal length differing only in their last
--   digit (e.g. 4254-4259 = 4254, 4255, ..., 4259; I10-I13 = I10, I11, I12, I13), expanded here.
--   A diagnosis matches a label when its icd_code (dots removed) starts with one of the prefixes
--   of the same icd_version (labels.sql).
-- Source: sql/labels.csv (HCUP CCS categories; Quan et al. 2005 Elixhauser ICD coding;
--   mimic-code explicit sepsis), as tabulated in /shared/mimic-iv-reference.md.
-- Inputs: sql/labels.csv (session variable labels_csv).
WITH definitions AS (
    SELECT label, icd9_prefixes, icd10_prefixes
    FROM read_csv(
        getvariable('labels_csv'), header = true, auto_detect = false,
        delim = ',', quote = '"', escape = '"',
        columns = {
            'label': 'VARCHAR', 'icd9_prefixes': 'VARCHAR',
            'icd10_prefixes': 'VARCHAR', 'source': 'VARCHAR'
        }
    )
), entries AS (
    SELECT label, 9 AS icd_version, unnest(string_split(trim(icd9_prefixes), ' ')) AS entry
    FROM definitions
    UNION ALL
    SELECT label, 10 AS icd_version, unnest(string_split(trim(icd10_prefixes), ' ')) AS entry
    FROM definitions
), ranges AS (
    SELECT
        label,
        icd_version,
        upper(split_part(entry, '-', 1)) AS first_prefix,
        upper(coalesce(nullif(split_part(entry, '-', 2), ''), split_part(entry, '-', 1))) AS last_prefix
    FROM entries
    WHERE entry <> ''
), checked AS (
    SELECT
        *,
        first_prefix = last_prefix AS is_single,
        length(first_prefix) = length(last_prefix)
            AND first_prefix[:-2] = last_prefix[:-2]
            AND regexp_full_match(first_prefix[-1:] || last_prefix[-1:], '[0-9]{2}')
            AND first_prefix[-1:] < last_prefix[-1:] AS is_digit_range
    FROM ranges
)
SELECT DISTINCT
    label,
    icd_version,
    unnest(
        CASE
            WHEN is_single THEN [first_prefix]
            WHEN is_digit_range THEN list_transform(
                range(CAST(first_prefix[-1:] AS INTEGER), CAST(last_prefix[-1:] AS INTEGER) + 1),
                lambda d: first_prefix[:-2] || CAST(d AS VARCHAR)
            )
            ELSE error('sql/labels.csv: label ' || label || ' has malformed prefix range '
                || first_prefix || '-' || last_prefix)
        END
    ) AS prefix
FROM checked
