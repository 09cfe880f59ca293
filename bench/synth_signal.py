"""How much label signal the synthetic MIMIC-IV carries: a pooled logistic-regression baseline.

Independent of `crypten-fl extract`: its own small DuckDB query over the raw CSVs joins events
to each ICU stay within [intime, intime + 48 h], drops values outside mimic-code's valid
ranges, summarises each feature per stay (mean/min/max; urine: total; drugs: given or not),
labels stays by ICD prefix (sql/labels.csv, the definitions of shared/mimic-iv-reference.md),
and fits one scikit-learn logistic regression per label on 70 % of patients. Prints per-label
and macro AUROC on the other 30 % and the machine it ran on. A second fit adds each feature's
mean over the first and the last 12 h of the window: what it gains is signal that lives in
the time course, which summaries miss and a sequence model can use.

    .venv/bin/python -m bench.synth_signal --patients 5000 --seed 0
    .venv/bin/python -m bench.synth_signal --mimic-dir path/to/mimic   # an existing release
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
LABELS_CSV = REPO / "sql" / "labels.csv"
HOURS = 48
# feature -> (itemids, lower bound (exclusive), upper bound (inclusive), °F -> °C)
CHART: dict[str, tuple[tuple[int, ...], float, float]] = {
    "heart_rate": ((220045,), 0, 300), "sbp": ((220179, 220050), 0, 400),
    "dbp": ((220180, 220051), 0, 300), "mbp": ((220181, 220052), 0, 300),
    "resp_rate": ((220210, 224690), 0, 70), "spo2": ((220277,), 0, 100),
    "temp_c": ((223762,), 10, 50), "temp_f": ((223761,), 70, 120),
    "glucose_chart": ((225664, 220621), 0, 2000), "gcs_eye": ((220739,), 0, 4),
    "gcs_verbal": ((223900,), 0, 5), "gcs_motor": ((223901,), 0, 6),
    "weight": ((226512,), 0, 400), "fio2": ((223835,), 20, 100),
}
LABS: dict[str, tuple[int, float, float]] = {
    "creatinine": (50912, 0, 150), "bun": (51006, 0, 300), "sodium": (50983, 0, 200),
    "potassium": (50971, 0, 30), "chloride": (50902, 0, 200), "bicarbonate": (50882, 0, 100),
    "anion_gap": (50868, -50, 100), "wbc": (51301, 0, 1000), "platelets": (51265, 0, 3000),
    "glucose": (50931, 0, 5000), "lactate": (50813, 0, 50), "bilirubin": (50885, 0, 100),
    "albumin": (50862, 0, 10), "inr": (51237, 0, 20), "pt": (51274, 0, 200),
    "ptt": (51275, 0, 200), "alt": (50861, 0, 10000), "ast": (50878, 0, 20000),
    "hematocrit": (51221, 0, 100), "hemoglobin": (51222, 0, 30), "calcium": (50893, 0, 30),
}
URINE_ITEMIDS = (226559, 226560, 226561, 226567)
DRUGS: dict[str, tuple[str, ...]] = {
    "vasopressor": ("norepinephrine", "vasopressin", "phenylephrine", "epinephrine", "dopamine"),
    "antibiotic": ("vancomycin", "piperacillin", "cefepime", "meropenem", "ceftriaxone",
                   "azithromycin", "ciprofloxacin", "cefazolin"),
    "insulin": ("insulin",), "heparin": ("heparin",), "furosemide": ("furosemide",),
}


def label_prefixes(path: Path = LABELS_CSV) -> dict[str, dict[int, tuple[str, ...]]]:
    """{label: {9: prefixes, 10: prefixes}} with ranges like '4254-4259' expanded."""
    out: dict[str, dict[int, tuple[str, ...]]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            out[row["label"]] = {9: _expand(row["icd9_prefixes"]),
                                 10: _expand(row["icd10_prefixes"])}
    return out


def _expand(field: str) -> tuple[str, ...]:
    prefixes: list[str] = []
    for token in field.split():
        if "-" not in token:
            prefixes.append(token)
            continue
        lo, hi = token.split("-")
        head = "".join(ch for ch in lo if ch.isalpha())
        a, b = int(lo[len(head):]), int(hi[len(head):])
        width = len(lo) - len(head)
        prefixes += [f"{head}{k:0{width}d}" for k in range(a, b + 1)]
    return tuple(prefixes)


def _csv(mimic: Path, table: str) -> str:
    folder = "icu" if table in {"icustays", "chartevents", "outputevents"} else "hosp"
    path = mimic / folder / f"{table}.csv.gz"
    if not path.exists():
        path = path.with_suffix("")
    types = {"hadm_id": "BIGINT"}
    if table in {"chartevents", "labevents"}:
        types |= {"valuenum": "DOUBLE", "value": "VARCHAR"}
    return f"read_csv('{path}', header=true, types={types})"


def stay_features(mimic: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(features per stay, 0/1 labels per stay), both keyed by stay_id with subject_id."""
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE stays AS SELECT subject_id, hadm_id, stay_id, intime,
        intime + INTERVAL {HOURS} HOUR AS wend FROM {_csv(mimic, 'icustays')}""")
    items = [(i, f, lo, hi) for f, (ids, lo, hi) in CHART.items() for i in ids]
    items += [(i, f, lo, hi) for f, (i, lo, hi) in LABS.items()]
    con.execute("CREATE TABLE items (itemid INT, feature VARCHAR, lo DOUBLE, hi DOUBLE)")
    con.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", items)
    values = f"""
        SELECT s.stay_id, i.feature, e.valuenum AS v,
               date_diff('minute', s.intime, e.charttime) / 60.0 AS h
        FROM {_csv(mimic, 'chartevents')} e JOIN items i USING (itemid)
        JOIN stays s ON e.stay_id = s.stay_id
        WHERE e.charttime >= s.intime AND e.charttime < s.wend
          AND e.valuenum > i.lo AND e.valuenum <= i.hi
        UNION ALL
        SELECT s.stay_id, i.feature, e.valuenum, date_diff('minute', s.intime, e.charttime) / 60.0
        FROM {_csv(mimic, 'labevents')} e JOIN items i USING (itemid)
        JOIN stays s ON e.subject_id = s.subject_id
        WHERE e.charttime >= s.intime AND e.charttime < s.wend
          AND e.valuenum > i.lo AND e.valuenum <= i.hi"""
    long = con.sql(f"""
        SELECT stay_id, CASE WHEN feature = 'temp_f' THEN 'temp_c' ELSE feature END AS feature,
               avg(v2) AS mean, min(v2) AS min, max(v2) AS max,
               avg(v2) FILTER (WHERE h < 12) AS early, avg(v2) FILTER (WHERE h >= 36) AS late
        FROM (SELECT *, CASE WHEN feature = 'temp_f' THEN (v - 32) / 1.8 ELSE v END AS v2
              FROM ({values}))
        GROUP BY ALL""").pl()
    wide = long.pivot(on="feature", index="stay_id",
                      values=["mean", "min", "max", "early", "late"])
    urine = con.sql(f"""
        SELECT s.stay_id, sum(e.value) AS urine_total FROM {_csv(mimic, 'outputevents')} e
        JOIN stays s ON e.stay_id = s.stay_id
        WHERE e.itemid IN {URINE_ITEMIDS} AND e.charttime >= s.intime AND e.charttime < s.wend
          AND e.value >= 0 AND e.value < 5000
        GROUP BY ALL""").pl()
    flags = ", ".join(_drug_flag(cat, names) for cat, names in DRUGS.items())
    drugs = con.sql(f"""
        SELECT s.stay_id, {flags} FROM stays s JOIN {_csv(mimic, 'prescriptions')} p
        ON p.hadm_id = s.hadm_id AND p.starttime < s.wend
           AND coalesce(p.stoptime, p.starttime) >= s.intime
        GROUP BY ALL""").pl()
    base = con.sql("SELECT stay_id, subject_id, hadm_id FROM stays").pl()
    features = (base.join(wide, on="stay_id", how="left").join(urine, on="stay_id", how="left")
                .join(drugs, on="stay_id", how="left")
                .with_columns(pl.col("^drug_.*$").fill_null(0)).sort("stay_id"))
    return features.drop("hadm_id"), _labels(con, mimic, base)


def _drug_flag(category: str, names: tuple[str, ...]) -> str:
    match = " OR ".join(f"lower(p.drug) LIKE '%{name}%'" for name in names)
    return f"max(CASE WHEN {match} THEN 1 ELSE 0 END) AS drug_{category}"


def _labels(con: duckdb.DuckDBPyConnection, mimic: Path, base: pl.DataFrame) -> pl.DataFrame:
    rows = [(label, v, p) for label, by_version in label_prefixes().items()
            for v, prefixes in by_version.items() for p in prefixes]
    con.execute("CREATE TABLE prefixes (label VARCHAR, version INT, prefix VARCHAR)")
    con.executemany("INSERT INTO prefixes VALUES (?, ?, ?)", rows)
    hits = con.sql(f"""
        SELECT DISTINCT s.stay_id, p.label FROM stays s
        JOIN {_csv(mimic, 'diagnoses_icd')} d ON d.hadm_id = s.hadm_id
        JOIN prefixes p ON d.icd_version = p.version
         AND starts_with(CAST(d.icd_code AS VARCHAR), p.prefix)""").pl()
    labels = list(label_prefixes())
    wide = base.select("stay_id", "subject_id")
    for label in labels:
        ids = hits.filter(pl.col("label") == label)["stay_id"]
        wide = wide.with_columns(pl.col("stay_id").is_in(ids.implode()).cast(pl.Int8).alias(label))
    return wide.sort("stay_id")


def auroc_by_label(features: pl.DataFrame, labels: pl.DataFrame, seed: int = 0,
                   trend: bool = False) -> dict[str, float]:
    """Test AUROC per label of a logistic regression on the per-stay summaries.

    Without ``trend`` only mean/min/max (and urine, drugs) are used; with it, also each
    feature's change from the first 12 h to the last 12 h (late mean - early mean).
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    subjects = features["subject_id"].unique().sort().to_numpy()
    test_subjects = np.random.default_rng(seed).permutation(subjects)[: int(0.3 * len(subjects))]
    test = np.isin(features["subject_id"].to_numpy(), test_subjects)
    early = [c for c in features.columns if c.startswith("early_")]
    late = [c.replace("early_", "late_") for c in early]
    x = features.drop(["stay_id", "subject_id", *early, *late])
    if trend:
        x = x.with_columns((features[b] - features[a]).alias(f"trend_{a[6:]}")
                           for a, b in zip(early, late, strict=True))
    x = x.to_numpy().astype(float)
    out: dict[str, float] = {}
    for label in labels.columns[2:]:
        y = labels[label].to_numpy()
        model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                              StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        model.fit(x[~test], y[~test])
        out[label] = float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mimic-dir", type=Path, help="evaluate this release, do not generate")
    args = parser.parse_args()
    from crypten_fl.mimic_etl.synth import generate

    from bench.machine import describe

    with tempfile.TemporaryDirectory(prefix="synth-signal-") as tmp:
        mimic = args.mimic_dir
        began = time.perf_counter()
        if mimic is None:
            mimic = Path(tmp) / "mimic"
            summary = generate(mimic, args.patients, seed=args.seed)
            print(f"generated {summary.icu_stays:,} ICU stays, {summary.total_rows:,} rows "
                  f"in {summary.elapsed_seconds:.1f} s")
        t0 = time.perf_counter()
        features, labels = stay_features(mimic)
        t1 = time.perf_counter()
        auc = auroc_by_label(features, labels, args.seed)
        auc_trend = auroc_by_label(features, labels, args.seed, trend=True)
        t2 = time.perf_counter()
    print(f"\n{'label':<22}{'prevalence':>11}{'AUROC':>8}{'+ trend':>9}")
    for label, value in auc.items():
        print(f"{label:<22}{labels[label].mean():>11.3f}{value:>8.3f}{auc_trend[label]:>9.3f}")
    values, with_trend = np.array(list(auc.values())), np.array(list(auc_trend.values()))
    print(f"\nmacro-AUROC {values.mean():.3f} (with trends {with_trend.mean():.3f})   "
          f"spread (max - min) {np.ptp(values):.3f}")
    n_summary = sum(not c.startswith(("early_", "late_")) for c in features.columns) - 2
    print(f"{len(features):,} stays, {n_summary} summary features; DuckDB {t1 - t0:.1f} s, "
          f"fit {t2 - t1:.1f} s, total {t2 - began:.1f} s")
    print("machine:", describe())


if __name__ == "__main__":
    main()
