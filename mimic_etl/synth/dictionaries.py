"""The d_* dictionary tables: every code and itemid the generator writes, with labels/units."""

from __future__ import annotations

import polars as pl
from crypten_fl.mimic_etl.synth import icd
from crypten_fl.mimic_etl.synth.items import OUTPUT_ITEMS, all_chart_items
from crypten_fl.mimic_etl.synth.labitems import ALL_LAB_ITEMS


def d_icd_diagnoses() -> pl.DataFrame:
    """hosp/d_icd_diagnoses: (icd_code, icd_version, long_title)."""
    rows = icd.dictionary_rows()
    return pl.DataFrame(
        {"icd_code": [r[0] for r in rows], "icd_version": [r[1] for r in rows],
         "long_title": [r[2] for r in rows]},
        schema={"icd_code": pl.String, "icd_version": pl.Int16, "long_title": pl.String},
    )


def d_labitems() -> pl.DataFrame:
    """hosp/d_labitems: (itemid, label, fluid, category), sorted by itemid."""
    items = sorted(ALL_LAB_ITEMS, key=lambda i: i.itemid)
    return pl.DataFrame({
        "itemid": [i.itemid for i in items], "label": [i.label for i in items],
        "fluid": [i.fluid for i in items], "category": [i.category for i in items],
    })


def d_items() -> pl.DataFrame:
    """icu/d_items for the chartevents and outputevents items, sorted by itemid."""
    linked = [(i, "chartevents") for i in all_chart_items()]
    linked += [(i, "outputevents") for i in OUTPUT_ITEMS]
    linked.sort(key=lambda pair: pair[0].itemid)
    return pl.DataFrame(
        {
            "itemid": [i.itemid for i, _ in linked],
            "label": [i.label for i, _ in linked],
            "abbreviation": [i.abbreviation for i, _ in linked],
            "linksto": [table for _, table in linked],
            "category": [i.category for i, _ in linked],
            "unitname": [i.unit for i, _ in linked],
            "param_type": [i.param_type for i, _ in linked],
            "lownormalvalue": [i.normal[0] if i.normal else None for i, _ in linked],
            "highnormalvalue": [i.normal[1] if i.normal else None for i, _ in linked],
        },
        schema_overrides={"unitname": pl.String, "lownormalvalue": pl.Float64,
                          "highnormalvalue": pl.Float64},
    )
