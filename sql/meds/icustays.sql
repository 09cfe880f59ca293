-- Title: icustays — icu/icustays rebuilt from MEDS ICU admission and discharge events
-- Definition: the k-th ICU_ADMISSION of a subject (in time order) opens a stay that the
--   subject's k-th ICU_DISCHARGE closes: intime, outtime = their times, first_careunit = the
--   unit after ICU_ADMISSION//, los = (outtime - intime) in days (NULL without a discharge).
--   stay_id is the event's stay_id column when the shards have one, else 30000000 + the stay's
--   rank by (subject_id, intime). hadm_id is the event's hadm_id column, else the subject's
--   latest admission with admittime <= intime (MEDS has no stay or admission ids).
-- Codes (codes.csv): ICU_ADMISSION//<careunit> (icu_admission), ICU_DISCHARGE[//<careunit>]
--   (icu_discharge).
-- Inputs: meds_events, meds_codes, admissions.
WITH events AS (
    SELECT
        e.subject_id, e.time, e.stay_id, e.hadm_id, c.kind,
        nullif(regexp_extract(e.code, '^ICU_[A-Z]+//(.*)$', 1), '') AS careunit,
        row_number() OVER (PARTITION BY e.subject_id, c.kind ORDER BY e.time, e.stay_id) AS k
    FROM meds_events AS e
    JOIN meds_codes AS c ON c.code = e.code
    WHERE c.kind IN ('icu_admission', 'icu_discharge') AND e.time IS NOT NULL
), stays AS (
    SELECT
        i.subject_id,
        coalesce(i.stay_id, 30000000 + row_number() OVER (ORDER BY i.subject_id, i.time))
            AS stay_id,
        i.hadm_id,
        i.careunit AS first_careunit,
        i.time AS intime,
        o.time AS outtime
    FROM events AS i
    LEFT JOIN events AS o
        ON o.subject_id = i.subject_id AND o.kind = 'icu_discharge' AND o.k = i.k
    WHERE i.kind = 'icu_admission'
)
SELECT
    s.subject_id,
    coalesce(s.hadm_id, a.hadm_id) AS hadm_id,
    s.stay_id,
    s.first_careunit,
    s.intime,
    s.outtime,
    (epoch_us(s.outtime) - epoch_us(s.intime)) / 8.64e10 AS los
FROM stays AS s
ASOF LEFT JOIN admissions AS a ON a.subject_id = s.subject_id AND a.admittime <= s.intime
