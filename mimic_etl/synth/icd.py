"""ICD-9-CM / ICD-10-CM codes (no dots) that the generator writes to diagnoses_icd.

Each labelled condition has codes that match its prefix definition in
shared/mimic-iv-reference.md (CCS / Quan 2005) and no other label's; the unlabelled drivers
and the filler list hold common ICU diagnoses that match no label. Titles are the official
long titles (CMS ICD-9-CM v32 / ICD-10-CM), as in MIMIC-IV's d_icd_diagnoses.
"""

from __future__ import annotations

Code = tuple[str, str]  # (icd_code, long_title)

ICD9: dict[str, tuple[Code, ...]] = {
    "heart_failure": (
        ("4280", "Congestive heart failure, unspecified"),
        ("42832", "Chronic diastolic heart failure"),
        ("42833", "Acute on chronic diastolic heart failure"),
        ("42823", "Acute on chronic systolic heart failure"),
        ("4254", "Other primary cardiomyopathies"),
    ),
    "respiratory_failure": (
        ("51881", "Acute respiratory failure"),
        ("51884", "Acute and chronic respiratory failure"),
        ("51882", "Other pulmonary insufficiency, not elsewhere classified"),
    ),
    "sepsis": (
        ("0389", "Unspecified septicemia"),
        ("99591", "Sepsis"),
        ("99592", "Severe sepsis"),
        ("78552", "Septic shock"),
        ("03842", "Septicemia due to escherichia coli [E. coli]"),
    ),
    "aki": (
        ("5849", "Acute kidney failure, unspecified"),
        ("5845", "Acute kidney failure with lesion of tubular necrosis"),
    ),
    "malnutrition": (
        ("2639", "Unspecified protein-calorie malnutrition"),
        ("262", "Other severe protein-calorie malnutrition"),
        ("78321", "Loss of weight"),
        ("7994", "Cachexia"),
    ),
    "pneumonia": (
        ("486", "Pneumonia, organism unspecified"),
        ("4829", "Bacterial pneumonia, unspecified"),
        ("481", "Pneumococcal pneumonia [Streptococcus pneumoniae pneumonia]"),
        ("4820", "Pneumonia due to Klebsiella pneumoniae"),
    ),
    "uti": (("5990", "Urinary tract infection, site not specified"),),
    "diabetes": (
        ("25000", "Diabetes mellitus without mention of complication, type II or unspecified "
                  "type, not stated as uncontrolled"),
        ("25040", "Diabetes with renal manifestations, type II or unspecified type, not stated "
                  "as uncontrolled"),
        ("25060", "Diabetes with neurological manifestations, type II or unspecified type, not "
                  "stated as uncontrolled"),
        ("25013", "Diabetes with ketoacidosis, type I [juvenile type], uncontrolled"),
    ),
    "hypertension": (
        ("4019", "Unspecified essential hypertension"),
        ("4011", "Benign essential hypertension"),
        ("40390", "Hypertensive chronic kidney disease, unspecified, with chronic kidney disease "
                  "stage I through stage IV, or unspecified"),
    ),
    "ckd": (
        ("5859", "Chronic kidney disease, unspecified"),
        ("5853", "Chronic kidney disease, Stage III (moderate)"),
        ("5854", "Chronic kidney disease, Stage IV (severe)"),
        ("5856", "End stage renal disease"),
    ),
    "liver_disease": (
        ("5715", "Cirrhosis of liver without mention of alcohol"),
        ("5712", "Alcoholic cirrhosis of liver"),
        ("5723", "Portal hypertension"),
        ("4560", "Esophageal varices with bleeding"),
    ),
    "neurological": (
        ("34590", "Epilepsy, unspecified, without mention of intractable epilepsy"),
        ("78039", "Other convulsions"),
        ("3320", "Paralysis agitans"),
        ("3481", "Anoxic brain damage"),
        ("340", "Multiple sclerosis"),
    ),
    "stroke_tbi": (
        ("431", "Intracerebral hemorrhage"),
        ("43491", "Cerebral artery occlusion, unspecified with cerebral infarction"),
        ("430", "Subarachnoid hemorrhage"),
        ("85220", "Subdural hemorrhage following injury without mention of open intracranial "
                  "wound, unspecified state of consciousness"),
    ),
    "copd": (("496", "Chronic airway obstruction, not elsewhere classified"),),
    "afib": (("42731", "Atrial fibrillation"),),
    "gi_bleed": (("5789", "Hemorrhage of gastrointestinal tract, unspecified"),),
    "dehydration": (("27651", "Dehydration"),),
    "cardiac_surgery": (
        ("41401", "Coronary atherosclerosis of native coronary artery"),
        ("4241", "Aortic valve disorders"),
    ),
}

ICD10: dict[str, tuple[Code, ...]] = {
    "heart_failure": (
        ("I509", "Heart failure, unspecified"),
        ("I5032", "Chronic diastolic (congestive) heart failure"),
        ("I5033", "Acute on chronic diastolic (congestive) heart failure"),
        ("I5023", "Acute on chronic systolic (congestive) heart failure"),
        ("I420", "Dilated cardiomyopathy"),
    ),
    "respiratory_failure": (
        ("J9601", "Acute respiratory failure with hypoxia"),
        ("J9600", "Acute respiratory failure, unspecified whether with hypoxia or hypercapnia"),
        ("J9602", "Acute respiratory failure with hypercapnia"),
        ("J9621", "Acute and chronic respiratory failure with hypoxia"),
    ),
    "sepsis": (
        ("A419", "Sepsis, unspecified organism"),
        ("R6520", "Severe sepsis without septic shock"),
        ("R6521", "Severe sepsis with septic shock"),
        ("A4151", "Sepsis due to Escherichia coli [E. coli]"),
        ("A4101", "Sepsis due to Methicillin susceptible Staphylococcus aureus"),
    ),
    "aki": (
        ("N179", "Acute kidney failure, unspecified"),
        ("N170", "Acute kidney failure with tubular necrosis"),
    ),
    "malnutrition": (
        ("E43", "Unspecified severe protein-calorie malnutrition"),
        ("E440", "Moderate protein-calorie malnutrition"),
        ("E46", "Unspecified protein-calorie malnutrition"),
        ("R634", "Abnormal weight loss"),
        ("R64", "Cachexia"),
    ),
    "pneumonia": (
        ("J189", "Pneumonia, unspecified organism"),
        ("J159", "Unspecified bacterial pneumonia"),
        ("J13", "Pneumonia due to Streptococcus pneumoniae"),
        ("J181", "Lobar pneumonia, unspecified organism"),
    ),
    "uti": (("N390", "Urinary tract infection, site not specified"),),
    "diabetes": (
        ("E119", "Type 2 diabetes mellitus without complications"),
        ("E1122", "Type 2 diabetes mellitus with diabetic chronic kidney disease"),
        ("E1165", "Type 2 diabetes mellitus with hyperglycemia"),
        ("E1010", "Type 1 diabetes mellitus with ketoacidosis without coma"),
    ),
    "hypertension": (
        ("I10", "Essential (primary) hypertension"),
        ("I129", "Hypertensive chronic kidney disease with stage 1 through stage 4 chronic "
                 "kidney disease, or unspecified chronic kidney disease"),
        ("I160", "Hypertensive urgency"),
    ),
    "ckd": (
        ("N189", "Chronic kidney disease, unspecified"),
        ("N183", "Chronic kidney disease, stage 3 (moderate)"),
        ("N184", "Chronic kidney disease, stage 4 (severe)"),
        ("N186", "End stage renal disease"),
    ),
    "liver_disease": (
        ("K7460", "Unspecified cirrhosis of liver"),
        ("K7031", "Alcoholic cirrhosis of liver with ascites"),
        ("K766", "Portal hypertension"),
        ("B182", "Chronic viral hepatitis C"),
        ("I8510", "Secondary esophageal varices without bleeding"),
    ),
    "neurological": (
        ("G40909", "Epilepsy, unspecified, not intractable, without status epilepticus"),
        ("R569", "Unspecified convulsions"),
        ("G20", "Parkinson's disease"),
        ("G931", "Anoxic brain damage, not elsewhere classified"),
        ("G35", "Multiple sclerosis"),
    ),
    "stroke_tbi": (
        ("I619", "Nontraumatic intracerebral hemorrhage, unspecified"),
        ("I639", "Cerebral infarction, unspecified"),
        ("I609", "Nontraumatic subarachnoid hemorrhage, unspecified"),
        ("S065X0A", "Traumatic subdural hemorrhage without loss of consciousness, initial "
                    "encounter"),
    ),
    "copd": (("J449", "Chronic obstructive pulmonary disease, unspecified"),),
    "afib": (("I4891", "Unspecified atrial fibrillation"),),
    "gi_bleed": (("K922", "Gastrointestinal hemorrhage, unspecified"),),
    "dehydration": (("E860", "Dehydration"),),
    "cardiac_surgery": (
        ("I2510", "Atherosclerotic heart disease of native coronary artery without angina "
                  "pectoris"),
        ("I350", "Nonrheumatic aortic (valve) stenosis"),
    ),
}

# Common ICU diagnoses unrelated to any label: (ICD-9, title9, ICD-10, title10).
FILLER: tuple[tuple[str, str, str, str], ...] = (
    ("2724", "Other and unspecified hyperlipidemia", "E785", "Hyperlipidemia, unspecified"),
    ("53081", "Esophageal reflux", "K219", "Gastro-esophageal reflux disease without esophagitis"),
    ("311", "Depressive disorder, not elsewhere classified", "F329",
     "Major depressive disorder, single episode, unspecified"),
    ("2859", "Anemia, unspecified", "D649", "Anemia, unspecified"),
    ("2449", "Unspecified acquired hypothyroidism", "E039", "Hypothyroidism, unspecified"),
    ("3051", "Tobacco use disorder", "Z87891", "Personal history of nicotine dependence"),
    ("2761", "Hyposmolality and/or hyponatremia", "E871", "Hypo-osmolality and hyponatremia"),
    ("2768", "Hypopotassemia", "E876", "Hypokalemia"),
    ("2762", "Acidosis", "E872", "Acidosis"),
    ("2875", "Thrombocytopenia, unspecified", "D696", "Thrombocytopenia, unspecified"),
    ("32723", "Obstructive sleep apnea (adult)(pediatric)", "G4733", "Obstructive sleep apnea "
     "(adult) (pediatric)"),
    ("60000", "Hypertrophy (benign) of prostate without urinary obstruction and other lower "
     "urinary tract symptom (LUTS)", "N400", "Benign prostatic hyperplasia without lower "
     "urinary tract symptoms"),
    ("V5861", "Long-term (current) use of anticoagulants", "Z7901",
     "Long term (current) use of anticoagulants"),
    ("V4986", "Do not resuscitate status", "Z66", "Do not resuscitate"),
    ("27800", "Obesity, unspecified", "E6601", "Morbid (severe) obesity due to excess calories"),
    ("V1582", "Personal history of tobacco use", "F17210",
     "Nicotine dependence, cigarettes, uncomplicated"),
    ("4240", "Mitral valve disorders", "I340", "Nonrheumatic mitral (valve) insufficiency"),
    ("E8497", "Accidents occurring in residential institution", "Y92239",
     "Unspecified place in hospital as the place of occurrence of the external cause"),
    ("30000", "Anxiety state, unspecified", "F419", "Anxiety disorder, unspecified"),
    ("73300", "Osteoporosis, unspecified", "M810",
     "Age-related osteoporosis without current pathological fracture"),
    ("V4581", "Aortocoronary bypass status", "Z951", "Presence of aortocoronary bypass graft"),
    ("2720", "Pure hypercholesterolemia", "E7800", "Pure hypercholesterolemia, unspecified"),
    ("2930", "Delirium due to conditions classified elsewhere", "F05",
     "Delirium due to known physiological condition"),
    ("78791", "Diarrhea", "R197", "Diarrhea, unspecified"),
    ("V1046", "Personal history of malignant neoplasm of prostate", "Z8546",
     "Personal history of malignant neoplasm of prostate"),
    ("4589", "Hypotension, unspecified", "I959", "Hypotension, unspecified"),
    ("2767", "Hyperpotassemia", "E875", "Hyperkalemia"),
    ("5119", "Unspecified pleural effusion", "J918", "Pleural effusion in other conditions "
     "classified elsewhere"),
    ("28529", "Anemia of other chronic disease", "D631", "Anemia in chronic kidney disease"),
    ("V1251", "Personal history of venous thrombosis and embolism", "Z86718",
     "Personal history of other venous thrombosis and embolism"),
)


def codes(condition: str, icd10: bool) -> tuple[Code, ...]:
    """Codes a condition is coded with under ICD-10-CM (``icd10``) or ICD-9-CM."""
    return (ICD10 if icd10 else ICD9)[condition]


def dictionary_rows() -> list[tuple[str, int, str]]:
    """(icd_code, icd_version, long_title) for every code the generator can write."""
    rows = {(c, 9, t) for group in ICD9.values() for c, t in group}
    rows |= {(c, 10, t) for group in ICD10.values() for c, t in group}
    rows |= {(f[0], 9, f[1]) for f in FILLER} | {(f[2], 10, f[3]) for f in FILLER}
    return sorted(rows, key=lambda r: (r[1], r[0]))
