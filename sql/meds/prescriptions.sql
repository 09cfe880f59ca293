-- Title: prescriptions — hosp/prescriptions rebuilt from MEDS medication start/stop events
-- Definition: the k-th MEDICATION//START//<drug> of a subject and drug (in time order) is an
--   order that the k-th MEDICATION//STOP//<drug> ends (stoptime NULL without one; medications.sql
--   then counts the order in its start bin only). drug = the code after START//, route = the
--   START event's text_value, drug_type NULL (not in the code). hadm_id is the event's hadm_id
--   column, else the subject's latest admission with admittime <= starttime.
-- Codes (codes.csv): MEDICATION//START//<drug> (med_start), MEDICATION//STOP//<drug> (med_stop).
-- Inputs: meds_events, meds_codes, admissions.
WITH events AS (
    SELECT
        e.subject_id, e.hadm_id, e.time, e.text_value, c.kind,
        regexp_extract(e.code, '^MEDICATION//[A-Z]+//(.*)$', 1) AS drug,
        row_number() OVER (
            PARTITION BY e.subject_id, c.kind,
                regexp_extract(e.code, '^MEDICATION//[A-Z]+//(.*)$', 1)
            ORDER BY e.time, e.hadm_id
        ) AS k
    FROM meds_events AS e
    JOIN meds_codes AS c ON c.code = e.code
    WHERE c.kind IN ('med_start', 'med_stop') AND e.time IS NOT NULL
), orders AS (
    SELECT
        s.subject_id, s.hadm_id, s.time AS starttime, o.time AS stoptime, s.drug,
        s.text_value AS route
    FROM events AS s
    LEFT JOIN events AS o
        ON o.subject_id = s.subject_id AND o.kind = 'med_stop' AND o.drug = s.drug AND o.k = s.k
    WHERE s.kind = 'med_start'
)
SELECT
    coalesce(r.hadm_id, a.hadm_id) AS hadm_id,
    r.starttime,
    r.stoptime,
    CAST(NULL AS VARCHAR) AS drug_type,
    r.drug,
    r.route
FROM orders AS r
ASOF LEFT JOIN admissions AS a ON a.subject_id = r.subject_id AND a.admittime <= r.starttime
