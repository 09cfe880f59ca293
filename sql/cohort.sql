-- Title: cohort — the ICU stays that are extracted
-- Definition: eligible stays (stay_windows: admission and patient found, age >= min_age, first ICU
--   stay of the admission, LOS >= min_los_hours when set) with at least one vital sign, lab value
--   or urine output in the observation window [intime, intime + hours). Medication orders alone do
--   not count as an observation.
-- Source: crypten-fl (criteria documented in docs/extract.md and written to cohort_flow.json).
-- Inputs: stay_windows, vitals, labs, urine.
SELECT w.*
FROM stay_windows AS w
WHERE w.eligible
    AND w.stay_id IN (
        SELECT stay_id FROM vitals
        UNION
        SELECT stay_id FROM labs
        UNION
        SELECT stay_id FROM urine
    )
