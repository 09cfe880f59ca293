"""The human-readable tables of an evaluation report, as plain data (rendered by tables.md and CLI).

Each table is a :class:`Table` (title, column names, rows of numbers and strings); the markdown
renderer writes NaN as "–" (e.g. the AUROC of a subgroup without positives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

METRICS = ("auroc", "accuracy", "precision", "recall", "f1", "specificity", "mse")


@dataclass(frozen=True)
class Table:
    """A titled table: ``rows[i][j]`` is the value of column ``columns[j]``."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


def _metric_cells(m: dict[str, Any]) -> list[Any]:
    return [m[k] for k in METRICS]


def overall_table(report: dict[str, Any]) -> Table:
    """Per disease, then macro and micro, over all hospitals' test stays."""
    overall, thresholds = report["overall"], report["thresholds"]
    rows = [[name, m["n"], m["positives"], thresholds[name]["value"], *_metric_cells(m)]
            for name, m in overall["labels"].items()]
    for avg in ("macro", "micro"):
        rows.append([avg, overall["micro"]["n"], "", "", *_metric_cells(overall[avg])])
    return Table(f"test metrics per disease, all hospitals ({report['evaluation']['method']})",
                 ["disease", "stays", "positives", "threshold", *METRICS], rows)


def hospital_table(report: dict[str, Any]) -> Table:
    """Macro averages per hospital, each on its own test split."""
    rows = [[h, m["n"], *_metric_cells(m["macro"])] for h, m in report["per_hospital"].items()]
    return Table("macro averages per hospital (each on its own test stays)",
                 ["hospital", "stays", *METRICS], rows)


def hospital_auroc_table(report: dict[str, Any]) -> Table:
    """AUROC per hospital (rows) and disease (columns)."""
    names = report["label_names"]
    rows = [[h, *(m["labels"][n]["auroc"] for n in names)]
            for h, m in report["per_hospital"].items()]
    return Table("AUROC per hospital and disease", ["hospital", *names], rows)


def subgroup_table(report: dict[str, Any]) -> Table | None:
    """Macro metrics per subgroup (age band, sex, race group) with counts."""
    groups = report.get("subgroups")
    if not groups:
        return None
    rows = [[family, group, m["micro"]["n"], m["micro"]["positives"], *_metric_cells(m["macro"])]
            for family, members in groups.items() for group, m in members.items()
            if m["micro"]["n"]]
    return Table("macro averages per subgroup (pooled test stays)",
                 ["family", "group", "stays", "positive labels", *METRICS], rows)


def subgroup_auroc_table(report: dict[str, Any]) -> Table | None:
    """AUROC per subgroup (rows) and disease (columns)."""
    groups = report.get("subgroups")
    if not groups:
        return None
    names = report["label_names"]
    rows = [[f"{family}: {group}", m["micro"]["n"], *(m["labels"][n]["auroc"] for n in names)]
            for family, members in groups.items() for group, m in members.items()
            if m["micro"]["n"]]
    return Table("AUROC per subgroup and disease", ["subgroup", "stays", *names], rows)


def cross_hospital_tables(report: dict[str, Any]) -> list[Table]:
    """Table II: seen vs unseen per metric, retained and drop; and per held-out hospital."""
    cross = report.get("cross_hospital")
    if not cross:
        return []
    summary = Table(
        "leave-one-hospital-out: macro metrics on seen vs unseen hospitals (mean over folds)",
        ["metric", "seen", "unseen", "retained %", "drop %"],
        [[m, v["seen"], v["unseen"], v["retained_pct"], v["drop_pct"]]
         for m, v in cross["summary"].items()])
    per = Table("leave-one-hospital-out per held-out hospital",
                ["held out", "metric", "seen", "unseen", "retained %", "drop %"],
                [[h, m, v["seen"], v["unseen"], v["retained_pct"], v["drop_pct"]]
                 for h, row in cross["per_hospital"].items() for m, v in row.items()])
    return [summary, per]


def report_tables(report: dict[str, Any]) -> list[Table]:
    """Every table of the report, in reading order."""
    tables = [overall_table(report), hospital_table(report), hospital_auroc_table(report),
              subgroup_table(report), subgroup_auroc_table(report),
              *cross_hospital_tables(report)]
    return [t for t in tables if t is not None]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def to_markdown(table: Table) -> str:
    """A markdown section: ``### title`` and a pipe table."""
    numeric = [any(isinstance(r[j], int | float) and not isinstance(r[j], bool)
                   for r in table.rows) for j in range(len(table.columns))]
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"
