"""RUN/eval/ files: metrics.json (everything), metrics.csv (one row per group × disease) and
tables.md (the tables a person reads)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from crypten_fl.common.manifest import write_json
from crypten_fl.fedtrain.evaluate.tables import METRICS, report_tables, to_markdown

CSV_COLUMNS = ("section", "group", "disease", "stays", "positives", "threshold", *METRICS)


def _metric_rows(section: str, group: str, metrics: dict[str, Any],
                 thresholds: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    rows = []
    for name, m in metrics["labels"].items():
        rows.append({"section": section, "group": group, "disease": name, "stays": m["n"],
                     "positives": m["positives"],
                     "threshold": thresholds[name]["value"] if thresholds else "",
                     **{k: m[k] for k in METRICS}})
    for avg in ("macro", "micro"):
        rows.append({"section": section, "group": group, "disease": avg,
                     "stays": metrics["micro"]["n"], "positives": metrics["micro"]["positives"],
                     "threshold": "", **{k: metrics[avg][k] for k in METRICS}})
    return rows


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (section, group, disease or macro/micro) with every metric."""
    thresholds = report["thresholds"]
    rows = _metric_rows("overall", "all", report["overall"], thresholds)
    for h, m in report["per_hospital"].items():
        rows += _metric_rows("hospital", h, m, thresholds)
    for family, members in (report.get("subgroups") or {}).items():
        for group, m in members.items():
            rows += _metric_rows("subgroup", f"{family}:{group}", m, thresholds)
    cross = report.get("cross_hospital")
    if cross:
        held_out = [("mean", cross["summary"]), *cross["per_hospital"].items()]
        for kind in ("seen", "unseen", "retained_pct", "drop_pct"):
            for group, table in held_out:
                rows.append({"section": f"cross_hospital_{kind}", "group": group,
                             "disease": "macro", "stays": "", "positives": "", "threshold": "",
                             **{m: table[m][kind] for m in METRICS}})
    return rows


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write metrics.json, metrics.csv and tables.md into ``out``."""
    write_json(out / "metrics.json", report)
    with open(out / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(report))
    ev = report["evaluation"]
    header = [f"# Evaluation of `{report['run']}`", "",
              f"- strategy: **{report['strategy']}**",
              f"- evaluation: {ev['method']}",
              f"- thresholds: {ev['threshold_rule']} (chosen on validation data)",
              f"- revealed: {ev['reveals']}", ""]
    if report.get("subgroups_note"):
        header += [f"- subgroups: {report['subgroups_note']}", ""]
    body = [to_markdown(t) for t in report_tables(report)]
    (out / "tables.md").write_text("\n".join(header) + "\n" + "\n".join(body))
