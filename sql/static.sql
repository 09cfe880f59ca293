-- Title: static — one row of stay-level covariates per cohort stay (static.parquet)
-- Definition: age at admission (years), sex (patients.gender), race group, admission type,
--   insurance, first care unit, anchor_year_group (a proxy of coding era: ICD-9 before ~2015),
--   ICU LOS in hours and weight_kg = the first binned weight (admission or daily weight, kg) in the
--   observation window, NULL when none was charted.
--   race_group maps MIMIC-IV admissions.race (v1.x: ethnicity) by prefix:
--     WHITE*, PORTUGUESE                                      -> white
--     BLACK*                                                  -> black
--     HISPANIC*, SOUTH AMERICAN                               -> hispanic
--     ASIAN*                                                  -> asian
--     UNKNOWN, UNABLE TO OBTAIN, PATIENT DECLINED TO ANSWER,
--     empty                                                   -> unknown
--     anything else (AMERICAN INDIAN/ALASKA NATIVE, NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER,
--     MULTIPLE RACE/ETHNICITY, OTHER, ...)                    -> other
-- Source: MIMIC-IV admissions/patients documentation; race grouping crypten-fl.
-- Inputs: cohort, vitals.
WITH first_weight AS (
    SELECT stay_id, arg_min(value, bin) AS weight_kg
    FROM vitals
    WHERE feature = 'weight'
    GROUP BY stay_id
), race AS (
    SELECT stay_id, upper(trim(coalesce(race, ''))) AS race_text
    FROM cohort
)
SELECT
    c.stay_id,
    c.subject_id,
    c.hadm_id,
    c.intime,
    CAST(c.los_hours AS DOUBLE) AS los_hours,
    CAST(c.age AS DOUBLE) AS age,
    c.gender AS sex,
    CASE
        WHEN r.race_text LIKE 'WHITE%' OR r.race_text = 'PORTUGUESE' THEN 'white'
        WHEN r.race_text LIKE 'BLACK%' THEN 'black'
        WHEN r.race_text LIKE 'HISPANIC%' OR r.race_text = 'SOUTH AMERICAN' THEN 'hispanic'
        WHEN r.race_text LIKE 'ASIAN%' THEN 'asian'
        WHEN r.race_text IN ('', 'UNKNOWN', 'UNABLE TO OBTAIN', 'PATIENT DECLINED TO ANSWER')
            THEN 'unknown'
        ELSE 'other'
    END AS race_group,
    c.admission_type,
    c.insurance,
    c.first_careunit,
    c.anchor_year_group,
    CAST(w.weight_kg AS DOUBLE) AS weight_kg
FROM cohort AS c
JOIN race AS r ON r.stay_id = c.stay_id
LEFT JOIN first_weight AS w ON w.stay_id = c.stay_id
ORDER BY c.stay_id
