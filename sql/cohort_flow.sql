-- Title: cohort_flow — how many stays each cohort criterion removed
-- Definition: one row per step, in order; remaining = stays passing this and every earlier step,
--   removed = previous remaining - remaining. The LOS step removes nothing when min_los_hours is
--   not set.
-- Source: crypten-fl.
-- Inputs: stay_windows, cohort; session variables hours, min_age, min_los_hours.
WITH counts AS (
    SELECT 1 AS step_order, 'all_stays' AS step,
        'ICU stays in icu/icustays' AS description,
        count(*) AS remaining
    FROM stay_windows
    UNION ALL
    SELECT 2, 'has_admission',
        'hadm_id found in hosp/admissions (and intime set)',
        count(*) FILTER (WHERE pass_admission)
    FROM stay_windows
    UNION ALL
    SELECT 3, 'has_patient',
        'subject_id found in hosp/patients',
        count(*) FILTER (WHERE pass_patient)
    FROM stay_windows
    UNION ALL
    SELECT 4, 'min_age',
        'age at admission (anchor_age + year(admittime) - anchor_year) >= '
            || getvariable('min_age') || ' (--min-age)',
        count(*) FILTER (WHERE pass_age)
    FROM stay_windows
    UNION ALL
    SELECT 5, 'first_stay',
        'first ICU stay of its hospital admission',
        count(*) FILTER (WHERE pass_first_stay)
    FROM stay_windows
    UNION ALL
    SELECT 6, 'min_los',
        CASE
            WHEN getvariable('min_los_hours') IS NULL
            THEN 'ICU length of stay: no minimum (--min-los-hours not given)'
            ELSE 'ICU length of stay >= ' || getvariable('min_los_hours') || ' h (--min-los-hours)'
        END,
        count(*) FILTER (WHERE pass_los)
    FROM stay_windows
    UNION ALL
    SELECT 7, 'has_observation',
        'at least one vital sign, lab value or urine output in the first '
            || getvariable('hours') || ' h (--hours)',
        count(*)
    FROM cohort
)
SELECT
    step_order,
    step,
    description,
    remaining,
    coalesce(lag(remaining) OVER (ORDER BY step_order) - remaining, 0) AS removed
FROM counts
ORDER BY step_order
