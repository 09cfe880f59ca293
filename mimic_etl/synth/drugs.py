"""The prescriptions drug catalogue: real drug names, strengths and routes, and who gets them.

``anchor`` says when an order starts: at admission, at the onset of a condition (antibiotics
at sepsis/pneumonia/UTI onset), at the start of vasopressor support, or at ICU admission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Drug:
    """One catalogue entry: the prescriptions columns it fills and its ordering model."""

    drug: str
    category: str
    drug_type: str
    formulary_drug_cd: str
    gsn: str | None
    ndc: str
    prod_strength: str
    dose_val_rx: str
    dose_unit_rx: str
    form_val_disp: str
    form_unit_disp: str
    doses_per_24_hrs: float | None
    route: str
    p_icu: float = 0.0  # probability per ICU admission without any boost
    p_ward: float = 0.0  # per admission without ICU stay
    boost: Mapping[str, float] = field(default_factory=dict)  # condition -> probability
    anchor: str = "admit"  # "admit", "icu", "pressor", or a condition name (its onset)
    hours: float = 72.0  # mean duration of one order
    repeats: float = 0.5  # mean number of renewals


def _d(drug: str, cat: str, code: str, gsn: str | None, ndc: str, strength: str, dose: str,
       unit: str, disp: str, disp_unit: str, per_day: float | None, route: str,
       **model: object) -> Drug:
    return Drug(drug, cat, "MAIN", code, gsn, ndc, strength, dose, unit, disp, disp_unit,
                per_day, route, **model)  # type: ignore[arg-type]


DRUGS: tuple[Drug, ...] = (
    # vasopressors (only during a vasopressor period)
    _d("Norepinephrine", "vasopressor", "NORE4I", "047434", "00409144301",
       "4mg/250mL Premix Bag", "0.06", "mcg/kg/min", "250", "mL", None, "IV DRIP",
       p_icu=0.85, anchor="pressor", hours=30, repeats=0.3),
    _d("Vasopressin", "vasopressor", "VASO20I", "001749", "42023016401", "20 units/mL Vial",
       "2.4", "units/hr", "1", "VIAL", None, "IV DRIP", p_icu=0.3, anchor="pressor", hours=24,
       repeats=0.1),
    _d("Phenylephrine", "vasopressor", "PHEN10I", "004409", "00641614225", "10 mg/mL Vial",
       "0.5", "mcg/kg/min", "1", "VIAL", None, "IV DRIP", p_icu=0.25,
       boost={"cardiac_surgery": 0.6}, anchor="pressor", hours=18, repeats=0.1),
    _d("Epinephrine", "vasopressor", "EPIN1I", "004395", "00409490134", "1mg/10mL Syringe",
       "0.02", "mcg/kg/min", "1", "SYR", None, "IV DRIP", p_icu=0.08,
       boost={"cardiac_surgery": 0.3}, anchor="pressor", hours=16, repeats=0.1),
    _d("DOPamine", "vasopressor", "DOPA400I", "004431", "00338100502",
       "400mg/250mL Premix, D5W", "5", "mcg/kg/min", "250", "mL", None, "IV DRIP", p_icu=0.05,
       anchor="pressor", hours=18, repeats=0.1),
    # antibiotics
    _d("Vancomycin", "antibiotic", "VANC1F", "043952", "00338355148", "1 g Frozen Bag", "1000",
       "mg", "1", "BAG", 2.0, "IV", p_icu=0.3, p_ward=0.03,
       boost={"sepsis": 0.85, "pneumonia": 0.45}, anchor="sepsis", hours=48, repeats=1.5),
    _d("Piperacillin-Tazobactam", "antibiotic", "PIPT4.5F", "065964", "00206886102",
       "4.5 g Frozen Bag, Premix", "4.5", "g", "1", "BAG", 3.0, "IV", p_icu=0.15,
       boost={"sepsis": 0.6, "pneumonia": 0.25}, anchor="sepsis", hours=48, repeats=1.2),
    _d("CefePIME", "antibiotic", "CEFE2I", "066386", "60505683400", "2 g Vial", "2", "g", "1",
       "VIAL", 2.0, "IV", p_icu=0.03, boost={"sepsis": 0.3, "pneumonia": 0.3},
       anchor="pneumonia", hours=48, repeats=1.0),
    _d("Meropenem", "antibiotic", "MERO1I", "062925", "63323050720", "1 g Vial", "1", "g", "1",
       "VIAL", 3.0, "IV", p_icu=0.02, boost={"sepsis": 0.15}, anchor="sepsis", hours=48,
       repeats=1.0),
    _d("CefTRIAXone", "antibiotic", "CEFT1I", "009221", "00409733201", "1 gm Vial", "1", "g",
       "1", "VIAL", 1.0, "IV", p_icu=0.04, p_ward=0.04, boost={"pneumonia": 0.5, "uti": 0.6},
       anchor="uti", hours=48, repeats=1.0),
    _d("Azithromycin", "antibiotic", "AZIT500I", "026680", "00069315083", "500 mg Vial", "500",
       "mg", "1", "VIAL", 1.0, "IV", boost={"pneumonia": 0.5}, anchor="pneumonia", hours=72,
       repeats=0.5),
    _d("Ciprofloxacin HCl", "antibiotic", "CIPR500", "023509", "00172531210", "500mg Tablet",
       "500", "mg", "1", "TAB", 2.0, "PO/NG", p_ward=0.02, boost={"uti": 0.2}, anchor="uti",
       hours=72, repeats=0.5),
    _d("CeFAZolin", "antibiotic", "CEFA2F", "009188", "00338350841", "2 g / 100 mL Premix",
       "2", "g", "1", "BAG", 3.0, "IV", p_icu=0.05, boost={"cardiac_surgery": 0.9},
       anchor="icu", hours=24, repeats=0.2),
    # insulin, anticoagulation, diuretics
    _d("Insulin", "insulin", "INSULIN", None, "00002831501", "100 Units / mL - 10 mL Vial",
       "0", "UNIT", "0", "VIAL", None, "SC", p_icu=0.4, p_ward=0.12,
       boost={"diabetes": 0.7, "cardiac_surgery": 0.8}, anchor="icu", hours=96, repeats=1.0),
    _d("Insulin Glargine", "insulin", "GLAR100I", "049479", "00088222033",
       "100 Units / mL - 10 mL Vial", "20", "UNIT", "0.2", "mL", 1.0, "SC",
       boost={"diabetes": 0.45}, anchor="admit", hours=96, repeats=0.5),
    _d("Heparin", "heparin", "HEPA5I", "006549", "63323026201", "5000 Units / mL- 1mL Vial",
       "5000", "UNIT", "1", "mL", 3.0, "SC", p_icu=0.55, p_ward=0.45, boost={"afib": 0.6},
       anchor="admit", hours=96, repeats=0.8),
    _d("Furosemide", "diuretic", "FURO40I", "008208", "00409610202", "40mg/4mL Vial", "40",
       "mg", "1", "VIAL", 2.0, "IV", p_icu=0.18, p_ward=0.06,
       boost={"heart_failure": 0.6, "ckd": 0.25, "aki": 0.1}, anchor="admit", hours=36,
       repeats=1.0),
    # everything else (not condition signals, or weak ones)
    _d("Acetaminophen", "analgesic", "ACET325", "004489", "00904198261", "325mg Tablet", "650",
       "mg", "2", "TAB", 4.0, "PO/NG", p_icu=0.7, p_ward=0.6, hours=96, repeats=0.4),
    _d("Sodium Chloride 0.9%  Flush", "fluid", "NACLFLUSH", None, "0", "10 mL Syringe", "3",
       "mL", "3", "mL", 3.0, "IV", p_icu=0.85, p_ward=0.7, hours=120, repeats=0.3),
    _d("Pantoprazole", "gi", "PANT40", "027462", "00008084199", "40mg Tablet", "40", "mg", "1",
       "TAB", 1.0, "PO", p_icu=0.5, p_ward=0.3, hours=120, repeats=0.3),
    _d("Docusate Sodium", "gi", "DOCU100", "003009", "00904224461", "100mg Capsule", "100", "mg",
       "1", "CAP", 2.0, "PO", p_icu=0.4, p_ward=0.3, hours=120, repeats=0.2),
    _d("Senna", "gi", "SENN187", "064019", "00536335501", "8.6 mg Tablet", "8.6", "mg", "1",
       "TAB", 2.0, "PO/NG", p_icu=0.4, p_ward=0.3, hours=120, repeats=0.2),
    _d("Potassium Chloride", "electrolyte", "KCL20P", "001275", "00245004101",
       "20mEq Packet, Powder", "40", "mEq", "2", "PKT", None, "PO", p_icu=0.45, p_ward=0.25,
       hours=6, repeats=1.5),
    _d("Magnesium Sulfate", "electrolyte", "MAG2PM", "013312", "00409672903",
       "2 g /50 mL Premix Bag", "2", "g", "1", "BAG", None, "IV", p_icu=0.4, p_ward=0.15,
       hours=4, repeats=1.2),
    _d("Ondansetron", "gi", "ONDA4I", "020599", "00143989705", "2mg/mL-2mL", "4", "mg", "1",
       "VIAL", 4.0, "IV", p_icu=0.35, p_ward=0.25, hours=72, repeats=0.2),
    _d("OxyCODONE (Immediate Release)", "analgesic", "OXYC5", "004225", "00406055262",
       "5mg Tablet", "5", "mg", "1", "TAB", 6.0, "PO", p_icu=0.25, p_ward=0.25, hours=72),
    _d("Lorazepam", "sedative", "LORA1I", "003757", "00641604410", "2mg/mL Vial", "1", "mg",
       "0.5", "mL", None, "IV", p_icu=0.15, hours=24),
    _d("Propofol", "sedative", "PROP100IG", "014004", "63323026965", "1000mg/100mL Vial", "20",
       "mcg/kg/min", "100", "mL", None, "IV DRIP", boost={"respiratory_failure": 0.6},
       anchor="respiratory_failure", hours=36, repeats=0.8),
    _d("Fentanyl Citrate", "analgesic", "FENT2I", "004160", "00409909422", "100mcg/2mL Amp",
       "25", "mcg/hr", "2", "mL", None, "IV DRIP", p_icu=0.1,
       boost={"respiratory_failure": 0.55, "cardiac_surgery": 0.5}, anchor="icu", hours=36,
       repeats=0.5),
    _d("Metoprolol Tartrate", "cardiac", "METO25", "005132", "51079025520", "25mg Tablet",
       "12.5", "mg", "0.5", "TAB", 2.0, "PO/NG", p_icu=0.2, p_ward=0.15,
       boost={"afib": 0.45, "hypertension": 0.2, "cardiac_surgery": 0.6}, hours=96, repeats=0.5),
    _d("Amlodipine", "cardiac", "AMLO5", "016926", "00069152066", "5 mg Tablet", "5", "mg",
       "1", "TAB", 1.0, "PO", p_ward=0.05, boost={"hypertension": 0.3}, hours=120),
    _d("Lisinopril", "cardiac", "LISI10", "000394", "00172375910", "10 mg Tablet", "10", "mg",
       "1", "TAB", 1.0, "PO", p_ward=0.05, boost={"hypertension": 0.22, "heart_failure": 0.2},
       hours=120),
    _d("HydrALAZINE", "cardiac", "HYDR20I", "000380", "63323061401", "20mg/mL Vial", "10", "mg",
       "0.5", "mL", 4.0, "IV", boost={"hypertension": 0.15}, hours=24, repeats=0.5),
    _d("LevETIRAcetam", "neuro", "LEVE500", "049839", "00781573001", "500mg Tablet", "500",
       "mg", "1", "TAB", 2.0, "PO/NG", boost={"neurological": 0.6, "stroke_tbi": 0.35},
       hours=120, repeats=0.5),
    _d("Lactulose", "gi", "LACT30L", "002963", "00121057730", "30mL UD", "30", "mL", "1", "UDCUP",
       3.0, "PO/NG", boost={"liver_disease": 0.7}, hours=96, repeats=0.5),
    _d("Rifaximin", "gi", "RIFA550", "063986", "65649030103", "550 mg Tablet", "550", "mg",
       "1", "TAB", 2.0, "PO/NG", boost={"liver_disease": 0.4}, hours=120),
    _d("Spironolactone", "diuretic", "SPIR25", "006805", "00378214601", "25mg Tablet", "50",
       "mg", "2", "TAB", 1.0, "PO", boost={"liver_disease": 0.3, "heart_failure": 0.2},
       hours=120),
    _d("Thiamine", "vitamin", "THIA100", "002606", "00904054461", "100mg Tablet", "100", "mg",
       "1", "TAB", 1.0, "PO/NG", p_ward=0.03, boost={"liver_disease": 0.3, "malnutrition": 0.3},
       hours=120),
    _d("Multivitamins W/minerals", "vitamin", "MVIM", "063937", "00904053061", "1 Tablet", "1",
       "TAB", "1", "TAB", 1.0, "PO/NG", boost={"malnutrition": 0.4}, hours=120),
    _d("Albumin 25% (12.5g / 50mL)", "fluid", "ALBU25", "001946", "68516521601", "12.5 g / 50 mL",
       "25", "g", "2", "VIAL", None, "IV", p_icu=0.05, boost={"liver_disease": 0.3}, hours=12),
    _d("Sodium Bicarbonate", "electrolyte", "SODI8.4I", "004570", "00409662502",
       "50mEq/50mL Syringe", "50", "mEq", "1", "SYR", None, "IV", p_icu=0.05,
       boost={"aki": 0.12}, anchor="aki", hours=12),
)
CATEGORIES: tuple[str, ...] = tuple(sorted({d.category for d in DRUGS}))
