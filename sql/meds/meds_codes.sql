-- Title: meds_codes — every distinct MEDS code with its event count and what it maps to
-- Definition: one row per distinct code of the MEDS shards (meds_events). relation and kind come
--   from the first row of codes.csv (in file order) whose regular expression `pattern` matches
--   the code; both are NULL for a code that maps to nothing (reported with its event count,
--   never fatal). The other files of this folder read events through this relation, so a code
--   means the same thing everywhere.
-- Source: codes.csv of the mapping folder (default crypten_fl/sql/meds/codes.csv: the codes of
--   the MIMIC-IV -> MEDS ETL).
-- Inputs: meds_events; session variable meds_codes_csv.
WITH rules AS (
    SELECT *, row_number() OVER () AS rule_order
    FROM read_csv(
        getvariable('meds_codes_csv'), header = true, auto_detect = false,
        delim = ',', quote = '"', escape = '"',
        columns = {
            'relation': 'VARCHAR', 'kind': 'VARCHAR', 'pattern': 'VARCHAR',
            'description': 'VARCHAR'
        }
    )
), counted AS (
    SELECT code, count(*) AS events
    FROM meds_events
    GROUP BY code
), matched AS (
    SELECT c.code, c.events, r.relation, r.kind, r.rule_order
    FROM counted AS c
    LEFT JOIN rules AS r ON regexp_matches(c.code, r.pattern)
)
SELECT
    code,
    any_value(events) AS events,
    arg_min(relation, rule_order) AS relation,
    arg_min(kind, rule_order) AS kind
FROM matched
GROUP BY code
