"""labevents itemids (d_labitems) grouped into the panels a blood draw orders.

Target labs read the latent physiology (``channel``); chloride, hematocrit and PT are
formulas of other channels (chloride = Na - HCO3 - anion gap, Hct ~ 3 x Hb, PT ~ 11.5 s x INR).
Filler labs are drawn from their own distribution (log-normal when ``log``) or text options.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabItem:
    """One d_labitems row plus how its values are generated."""

    itemid: int
    label: str
    fluid: str
    category: str
    unit: str | None
    ref: tuple[float, float] | None
    decimals: int
    channel: str | None = None  # latent channel or formula name (target labs)
    noise: float = 0.0  # measurement sd (log scale for log channels)
    mean: float = 0.0  # filler distribution
    sd: float = 0.0
    log: bool = False
    options: tuple[str, ...] = ()


CHEM, HEME, GAS = "Chemistry", "Hematology", "Blood Gas"
B, U = "Blood", "Urine"


def _f(itemid: int, label: str, unit: str | None, mean: float, sd: float, decimals: int,
       ref: tuple[float, float] | None = None, fluid: str = B, category: str = CHEM,
       log: bool = False) -> LabItem:
    return LabItem(itemid, label, fluid, category, unit, ref, decimals, mean=mean, sd=sd,
                   log=log)


def _t(itemid: int, label: str, options: tuple[str, ...]) -> LabItem:
    return LabItem(itemid, label, U, HEME, None, None, 0, options=options)


PANELS: dict[str, tuple[LabItem, ...]] = {
    "chem": (
        LabItem(50912, "Creatinine", B, CHEM, "mg/dL", (0.5, 1.2), 1, "creatinine", 0.04),
        LabItem(51006, "Urea Nitrogen", B, CHEM, "mg/dL", (6, 20), 0, "bun", 0.04),
        LabItem(50983, "Sodium", B, CHEM, "mEq/L", (133, 145), 0, "sodium", 0.8),
        LabItem(50971, "Potassium", B, CHEM, "mEq/L", (3.3, 5.1), 1, "potassium", 0.12),
        LabItem(50902, "Chloride", B, CHEM, "mEq/L", (96, 108), 0, "chloride", 0.8),
        LabItem(50882, "Bicarbonate", B, CHEM, "mEq/L", (22, 32), 0, "bicarbonate", 0.8),
        LabItem(50868, "Anion Gap", B, CHEM, "mEq/L", (8, 20), 0, "aniongap", 0.6),
        LabItem(50931, "Glucose", B, CHEM, "mg/dL", (70, 100), 0, "glucose", 0.05),
        LabItem(50893, "Calcium, Total", B, CHEM, "mg/dL", (8.4, 10.3), 1, "calcium", 0.1),
        _f(50960, "Magnesium", "mg/dL", 2.0, 0.3, 1, (1.6, 2.6)),
        _f(50970, "Phosphate", "mg/dL", 3.5, 0.9, 1, (2.7, 4.5)),
    ),
    "cbc": (
        LabItem(51301, "White Blood Cells", B, HEME, "K/uL", (4.0, 11.0), 1, "wbc", 0.05),
        LabItem(51265, "Platelet Count", B, HEME, "K/uL", (150, 440), 0, "platelets", 0.05),
        LabItem(51222, "Hemoglobin", B, HEME, "g/dL", (13.7, 17.5), 1, "hemoglobin", 0.2),
        LabItem(51221, "Hematocrit", B, HEME, "%", (40, 51), 1, "hematocrit", 0.8),
        _f(51248, "MCH", "pg", 30, 2, 1, (26, 32), category=HEME),
        _f(51249, "MCHC", "%", 33, 1.2, 1, (31, 37), category=HEME),
        _f(51250, "MCV", "fL", 90, 6, 0, (82, 98), category=HEME),
        _f(51277, "RDW", "%", 14.5, 1.8, 1, (10.5, 15.5), category=HEME),
        _f(52172, "RDW-SD", "fL", 47, 5, 1, (35.1, 46.3), category=HEME),
        _f(51279, "Red Blood Cells", "m/uL", 3.6, 0.6, 2, (4.6, 6.1), category=HEME),
    ),
    "diff": (
        _f(51256, "Neutrophils", "%", 75, 10, 1, (50, 70), category=HEME),
        _f(51244, "Lymphocytes", "%", 14, 7, 1, (18, 42), category=HEME),
        _f(51254, "Monocytes", "%", 6, 2, 1, (2, 11), category=HEME),
        _f(51200, "Eosinophils", "%", 1, 1, 1, (1, 4), category=HEME),
        _f(51146, "Basophils", "%", 0.3, 0.2, 1, (0, 1), category=HEME),
    ),
    "coag": (
        LabItem(51237, "INR(PT)", B, HEME, None, (0.9, 1.1), 1, "inr", 0.04),
        LabItem(51274, "PT", B, HEME, "sec", (9.4, 12.5), 1, "pt", 0.04),
        LabItem(51275, "PTT", B, HEME, "sec", (25, 36.5), 1, "ptt", 0.05),
    ),
    "lft": (
        LabItem(50861, "Alanine Aminotransferase (ALT)", B, CHEM, "IU/L", (0, 40), 0, "alt", 0.08),
        LabItem(50878, "Asparate Aminotransferase (AST)", B, CHEM, "IU/L", (0, 40), 0, "ast",
                0.08),
        LabItem(50885, "Bilirubin, Total", B, CHEM, "mg/dL", (0, 1.5), 1, "bilirubin", 0.06),
        LabItem(50862, "Albumin", B, CHEM, "g/dL", (3.5, 5.2), 1, "albumin", 0.1),
        _f(50863, "Alkaline Phosphatase", "IU/L", 4.5, 0.5, 0, (35, 105), log=True),
    ),
    "gas": (
        LabItem(50813, "Lactate", B, GAS, "mmol/L", (0.5, 2.0), 1, "lactate", 0.06),
        _f(50820, "pH", "units", 7.38, 0.06, 2, (7.35, 7.45), category=GAS),
        _f(50818, "pCO2", "mm Hg", 41, 7, 0, (35, 45), category=GAS),
        _f(50821, "pO2", "mm Hg", 4.6, 0.4, 0, (85, 105), category=GAS, log=True),
        _f(50802, "Base Excess", "mEq/L", 0, 4, 0, category=GAS),
        _f(50804, "Calculated Total CO2", "mEq/L", 25, 4, 0, (21, 30), category=GAS),
        _f(50817, "Oxygen Saturation", "%", 96, 3, 0, category=GAS),
        _f(50808, "Free Calcium", "mmol/L", 1.12, 0.08, 2, (1.12, 1.32), category=GAS),
    ),
    "urine": (
        _f(51491, "pH", "units", 6.0, 0.7, 1, (5, 8), fluid=U, category=HEME),
        _f(51498, "Specific Gravity", None, 1.015, 0.007, 3, (1.001, 1.035), fluid=U,
           category=HEME),
        _f(51516, "WBC", "#/hpf", 1.5, 1.2, 0, (0, 5), fluid=U, category=HEME, log=True),
        _f(51493, "RBC", "#/hpf", 1.0, 1.2, 0, (0, 2), fluid=U, category=HEME, log=True),
        _t(51484, "Ketone", ("NEG", "NEG", "TR", "10", "40")),
        _t(51478, "Glucose", ("NEG", "NEG", "NEG", "TR", "100", "1000")),
        _t(51492, "Protein", ("NEG", "TR", "30", "100")),
        _t(51466, "Blood", ("NEG", "TR", "SM", "MOD", "LG")),
        _t(51486, "Leukocytes", ("NEG", "TR", "SM", "MOD", "LG")),
        _t(51487, "Nitrite", ("NEG", "NEG", "POS")),
        _t(51514, "Urobilinogen", ("NEG", "0.2", "1", "2")),
        _t(51508, "Urine Color", ("Yellow", "Straw", "Amber", "Red")),
        _t(51506, "Urine Appearance", ("Clear", "Hazy", "Cloudy")),
    ),
    "misc": (
        _f(50910, "Creatine Kinase (CK)", "IU/L", 5.0, 1.0, 0, (0, 200), log=True),
        _f(51003, "Troponin T", "ng/mL", -3.5, 1.2, 2, (0, 0.01), log=True),
        _f(50954, "Lactate Dehydrogenase (LD)", "IU/L", 5.6, 0.5, 0, (94, 250), log=True),
        _f(50956, "Lipase", "IU/L", 3.6, 0.8, 0, (0, 60), log=True),
        _f(50889, "C-Reactive Protein", "mg/L", 3.0, 1.2, 1, (0, 5), log=True),
        _f(51214, "Fibrinogen, Functional", "mg/dL", 5.8, 0.35, 0, (200, 400), category=HEME,
           log=True),
    ),
}

ALL_LAB_ITEMS: tuple[LabItem, ...] = tuple(i for panel in PANELS.values() for i in panel)
TARGET_LAB_ITEMIDS: tuple[int, ...] = tuple(i.itemid for i in ALL_LAB_ITEMS if i.channel)
