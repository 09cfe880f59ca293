"""Item catalogues: the chartevents/outputevents/labevents itemids the generator writes.

Target itemids follow mimic-code (mimic-iv/concepts/measurement) as listed in
shared/mimic-iv-reference.md; filler itemids are other common MIMIC-IV items (alarms,
ventilator settings, nursing assessments, blood gas, differential, urinalysis) so that the
target items are a realistic fraction of each table. Labels/units are as in d_items/d_labitems.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One itemid: how it is labelled and, for filler items, how its values look."""

    itemid: int
    label: str
    abbreviation: str
    category: str
    unit: str | None
    param_type: str = "Numeric"
    normal: tuple[float, float] | None = None
    mean: float = 0.0  # filler: value distribution (normal, rounded)
    sd: float = 0.0
    decimals: int = 0
    options: tuple[str, ...] = ()  # filler text values (param_type 'Text')
    rate: float = 0.0  # filler: rows per ICU hour (vent items: per ventilated hour)
    vent: bool = False


def _text(itemid: int, label: str, category: str, options: tuple[str, ...], rate: float,
          vent: bool = False) -> Item:
    return Item(itemid, label, label, category, None, "Text", options=options, rate=rate,
                vent=vent)


def _num(itemid: int, label: str, abbr: str, category: str, unit: str | None, mean: float,
         sd: float, rate: float, decimals: int = 0, vent: bool = False) -> Item:
    return Item(itemid, label, abbr, category, unit, mean=mean, sd=sd, decimals=decimals,
                rate=rate, vent=vent)


VITAL = "Routine Vital Signs"
RESP = "Respiratory"
NEURO = "Neurological"
# Target chartevents items (values come from the latent physiology, see chart.py).
CHART_TARGETS: tuple[Item, ...] = (
    Item(220045, "Heart Rate", "HR", VITAL, "bpm", normal=(60, 100)),
    Item(220179, "Non Invasive Blood Pressure systolic", "NBPs", VITAL, "mmHg", normal=(90, 140)),
    Item(220180, "Non Invasive Blood Pressure diastolic", "NBPd", VITAL, "mmHg", normal=(60, 90)),
    Item(220181, "Non Invasive Blood Pressure mean", "NBPm", VITAL, "mmHg", normal=(60, 110)),
    Item(220050, "Arterial Blood Pressure systolic", "ABPs", VITAL, "mmHg", normal=(90, 140)),
    Item(220051, "Arterial Blood Pressure diastolic", "ABPd", VITAL, "mmHg", normal=(60, 90)),
    Item(220052, "Arterial Blood Pressure mean", "ABPm", VITAL, "mmHg", normal=(60, 110)),
    Item(220210, "Respiratory Rate", "RR", RESP, "insp/min", normal=(14, 20)),
    Item(224690, "Respiratory Rate (Total)", "RR (Total)", RESP, "insp/min", normal=(14, 20)),
    Item(220277, "O2 saturation pulseoxymetry", "SpO2", RESP, "%", normal=(90, 100)),
    Item(223761, "Temperature Fahrenheit", "Temperature F", VITAL, "°F", normal=(97, 100)),
    Item(223762, "Temperature Celsius", "Temperature C", VITAL, "°C", normal=(36, 38)),
    Item(225664, "Glucose finger stick (range 70-100)", "Glucose FS (range 70 -100)", "Labs",
         "mg/dL", normal=(70, 100)),
    Item(220621, "Glucose (serum)", "Glucose (serum)", "Labs", "mg/dL", normal=(70, 100)),
    Item(220739, "GCS - Eye Opening", "GCS - Eye Opening", NEURO, None, "Text"),
    Item(223900, "GCS - Verbal Response", "GCS - Verbal Response", NEURO, None, "Text"),
    Item(223901, "GCS - Motor Response", "GCS - Motor Response", NEURO, None, "Text"),
    Item(226512, "Admission Weight (Kg)", "Admission Weight (Kg)", "General", "kg"),
    Item(223835, "Inspired O2 Fraction", "FiO2", RESP, None, normal=(21, 100)),
)

_RASS = (
    "0 Alert and calm",
    "-1 Awakens to voice (eye opening/contact) > 10 sec",
    "-2 Light sedation, briefly awakens to voice (eye opening/contact) < 10 sec",
    "-3 Moderate sedation, movement or eye opening. No eye contact",
    "+1 Anxious, apprehensive, but not aggressive",
)
_STRENGTH = ("Normal strength", "Moves against gravity", "Movement, but not against gravity",
             "Flicker", "No movement")
_PAIN = ("None", "Mild", "Mild to Moderate", "Moderate", "Moderate to Severe", "Severe")
ALARMS = "Alarms"
CHART_FILLER: tuple[Item, ...] = (
    _num(220046, "Heart rate Alarm - High", "HR Alarm - High", ALARMS, "bpm", 120, 8, 1.6),
    _num(220047, "Heart Rate Alarm - Low", "HR Alarm - Low", ALARMS, "bpm", 50, 5, 1.6),
    _num(223751, "Non-Invasive Blood Pressure Alarm - High", "NBP Alarm - High", ALARMS,
         "mmHg", 160, 10, 1.4),
    _num(223752, "Non-Invasive Blood Pressure Alarm - Low", "NBP Alarm - Low", ALARMS, "mmHg",
         90, 5, 1.4),
    _num(220058, "Arterial Blood Pressure Alarm - High", "ABP Alarm - High", ALARMS, "mmHg",
         160, 10, 0.6),
    _num(220056, "Arterial Blood Pressure Alarm - Low", "ABP Alarm - Low", ALARMS, "mmHg", 90,
         5, 0.6),
    _num(223770, "O2 Saturation Pulseoxymetry Alarm - Low", "SpO2 Alarm - Low", ALARMS, "%",
         88, 2, 1.6),
    _num(223769, "O2 Saturation Pulseoxymetry Alarm - High", "SpO2 Alarm - High", ALARMS, "%",
         100, 0.5, 1.6),
    _num(224161, "Resp Alarm - High", "Resp Alarm - High", ALARMS, "insp/min", 35, 3, 1.6),
    _num(224162, "Resp Alarm - Low", "Resp Alarm - Low", ALARMS, "insp/min", 8, 1, 1.6),
    _num(224639, "Daily Weight", "Daily Weight", "General", "kg", 80, 17, 0.04, 1),
    _num(223834, "O2 Flow", "O2 Flow", RESP, "L/min", 3, 1.5, 1.8),
    _num(225677, "Phosphorous", "Phosphorous", "Labs", "mg/dL", 3.5, 0.8, 0.1, 1),
    _text(220048, "Heart Rhythm", VITAL, (
        "SR (Sinus Rhythm)", "ST (Sinus Tachycardia)", "AF (Atrial Fibrillation)",
        "SB (Sinus Bradycardia)", "1st AV (First degree AV Block)", "A Paced"), 3.0),
    _text(224650, "Ectopy Type 1", VITAL, ("None", "PVC's", "PAC's"), 2.5),
    _text(228096, "Richmond-RAS Scale", NEURO, _RASS, 1.6),
    _text(223791, "Pain Level", "Pain/Sedation", _PAIN, 1.6),
    _text(224409, "Pain Level Response", "Pain/Sedation", _PAIN, 0.8),
    _text(229319, "Activity / Mobility (JH-HLM)", "Toileting", (
        "1 Bed/Lying", "2 Bed activities/Dependent transfer", "4 Move to chair/commode",
        "6 Walk 10+ steps"), 0.8),
    _text(229323, "Current Dyspnea Assessment", RESP, ("None", "Mild", "Moderate"), 0.6),
    _text(228409, "Strength L Arm", NEURO, _STRENGTH, 0.8),
    _text(228410, "Strength L Leg", NEURO, _STRENGTH, 0.8),
    _text(228411, "Strength R Leg", NEURO, _STRENGTH, 0.8),
    _text(228412, "Strength R Arm", NEURO, _STRENGTH, 0.8),
    _text(224641, "Alarms On", ALARMS, ("Yes",), 2.0),
    _text(224168, "Parameters Checked", ALARMS, ("Yes",), 2.0),
    _text(224080, "Head of Bed", "Skin - Impairment", (
        "30 Degrees", "45 Degrees", "15 Degrees", "Flat"), 1.6),
    _text(224093, "Position", "Skin - Impairment", (
        "Left Side", "Right Side", "Supine", "Sitting, chair"), 1.6),
    _text(227969, "Safety Measures", "Safety", (
        "Bed locked, low position", "Side rails up x2, call light in reach",
        'Bed alarm on, "Fall risk" sign posted'), 1.6),
    _num(220339, "PEEP set", "PEEP set", RESP, "cmH2O", 5, 1.5, 1.0, vent=True),
    _num(224700, "Total PEEP Level", "Total PEEP Level", RESP, "cmH2O", 6, 1.5, 1.0, vent=True),
    _num(224684, "Tidal Volume (set)", "Tidal Volume (set)", RESP, "mL", 450, 40, 1.0,
         vent=True),
    _num(224685, "Tidal Volume (observed)", "Tidal Volume (observed)", RESP, "mL", 460, 70,
         1.0, vent=True),
    _num(224686, "Tidal Volume (spontaneous)", "Tidal Volume (spont)", RESP, "mL", 400, 80,
         0.5, vent=True),
    _num(224687, "Minute Volume", "Minute Volume", RESP, "L/min", 9, 2, 1.0, 1, vent=True),
    _num(224688, "Respiratory Rate (Set)", "Respiratory Rate (Set)", RESP, "insp/min", 16, 3,
         1.0, vent=True),
    _num(224689, "Respiratory Rate (spontaneous)", "Respiratory Rate (spont)", RESP,
         "insp/min", 4, 3, 1.0, vent=True),
    _num(224695, "Peak Insp. Pressure", "PIP", RESP, "cmH2O", 24, 5, 1.0, vent=True),
    _num(224696, "Plateau Pressure", "Plateau Pressure", RESP, "cmH2O", 20, 4, 0.5, vent=True),
    _num(224697, "Mean Airway Pressure", "MAP", RESP, "cmH2O", 10, 3, 1.0, vent=True),
    _num(220293, "Minute Volume Alarm - High", "MV Alarm - High", ALARMS, "L/min", 15, 2, 0.5,
         vent=True),
    _num(220292, "Minute Volume Alarm - Low", "MV Alarm - Low", ALARMS, "L/min", 4, 1, 0.5,
         vent=True),
    _num(223873, "Paw High", "Paw High", ALARMS, "cmH2O", 40, 3, 0.5, vent=True),
    _num(223874, "Vti High", "Vti High", ALARMS, "mL", 1000, 100, 0.5, vent=True),
    _num(223875, "Fspn High", "Fspn High", ALARMS, "insp/min", 35, 3, 0.5, vent=True),
    _num(223876, "Apnea Interval", "Apnea Interval", ALARMS, "sec", 20, 2, 0.5, vent=True),
    _num(224701, "PSV Level", "PSV Level", RESP, "cmH2O", 8, 3, 0.3, vent=True),
    _text(223849, "Ventilator Mode", RESP, (
        "CMV/ASSIST/AutoFlow", "CPAP/PSV", "CMV/ASSIST", "SIMV/PRES"), 1.0, vent=True),
)

OUTPUT_ITEMS: tuple[Item, ...] = (
    Item(226559, "Foley", "Foley", "Output", "ml"),
    Item(226560, "Void", "Void", "Output", "ml"),
    Item(226561, "Condom Cath", "Condom Cath", "Output", "ml"),
    Item(226567, "Straight Cath", "Straight Cath", "Output", "ml"),
    Item(226588, "Chest Tube #1", "Chest Tube #1", "Output", "ml"),
    Item(226589, "Chest Tube #2", "Chest Tube #2", "Output", "ml"),
)


def all_chart_items() -> tuple[Item, ...]:
    """Every chartevents itemid the generator may write."""
    return CHART_TARGETS + CHART_FILLER
