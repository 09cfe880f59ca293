"""RUN/audit/ files: audit.json (everything), audit.csv (one row per hospital + overall) and
audit.md (the table and how to read it); the description of who audited what."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from crypten_fl.common.manifest import read_json, write_json
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.evaluate.runs import RunInfo
from crypten_fl.fedtrain.evaluate.tables import Table, to_markdown
from crypten_fl.fedtrain.privacy.audit_summary import fpr_key
from crypten_fl.fedtrain.run.privacy_json import epsilon_spent

ATTACK_METHODS = {
    "loss": ("loss threshold: score = −log of the stay's mean binary cross-entropy under the "
             "final model (Yeom et al., CSF 2018)"),
    "shadow": ("offline LiRA, fixed variance (Carlini et al., S&P 2022): the target's "
               "logit-scaled confidence per label against reference models the hospital trained "
               "on its own non-candidate stays, z-scores combined over labels (Stouffer)"),
}
CSV_COLUMNS = ("population", "model", "members", "non_members", "auroc", "auroc_lo", "auroc_hi",
               "tpr_at_0.1pct_fpr", "tpr_at_0.1pct_fpr_lo", "tpr_at_0.1pct_fpr_hi",
               "tpr_0.1pct_resolved", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_lo",
               "tpr_at_1pct_fpr_hi", "tpr_1pct_resolved", "epsilon_lower_bound", "delta")


def auditor(strategy: str) -> str:
    """Who runs the audit of ``strategy``'s final model, with what."""
    cls = strategies.get(strategy)
    if cls.personalised:
        return "each hospital, on its own stays, with its own final model"
    if cls.single_process:
        return ("the central trainer (it holds every hospital's stays), hospital by hospital, "
                "with the pooled model")
    return "each hospital, on its own stays, with the final shared model (every hospital holds it)"


def describe_run(info: RunInfo, attack: str, attack_spec: dict[str, Any]) -> dict[str, Any]:
    """The run, the attack and the DP it was trained with (the head of audit.json)."""
    privacy_path = info.path / "privacy.json"
    privacy = read_json(privacy_path) if privacy_path.is_file() else {}
    central = privacy.get("central_dp")
    attack_info: dict[str, Any] = {"name": attack, "method": ATTACK_METHODS[attack]}
    if attack == "shadow":
        attack_info |= {"reference_models": attack_spec["references"],
                        "reference_epochs": attack_spec["epochs"],
                        "reference_fraction": attack_spec["fraction"]}
    return {
        "run": str(info.path), "strategy": info.strategy, "auditor": auditor(info.strategy),
        "attack": attack_info,
        "candidates": ("members: training stays; non-members: held-out (val + test) stays of the "
                       "same hospital; equal numbers per stratum of the number of positive "
                       "labels (0, 1, 2, 3+)"),
        "dp": {"dp_sgd": bool(privacy.get("dp_sgd")), "target_epsilon":
               privacy.get("target_epsilon"), "epsilon_spent": epsilon_spent(privacy),
               "central_dp": central is not None,
               "central_epsilon": None if central is None else central.get("epsilon")},
    }


def _ci(entry: dict[str, Any], side: int) -> float | str:
    return "" if entry.get("ci") is None else entry["ci"][side]


def _row(population: str, model: str, m: dict[str, Any]) -> dict[str, Any]:
    low, one = m["tpr_at_fpr"][fpr_key(0.001)], m["tpr_at_fpr"][fpr_key(0.01)]
    return {"population": population, "model": model, "members": m["members"],
            "non_members": m["non_members"], "auroc": m["auroc"]["value"],
            "auroc_lo": _ci(m["auroc"], 0), "auroc_hi": _ci(m["auroc"], 1),
            "tpr_at_0.1pct_fpr": low["value"], "tpr_at_0.1pct_fpr_lo": _ci(low, 0),
            "tpr_at_0.1pct_fpr_hi": _ci(low, 1), "tpr_0.1pct_resolved": low["resolved"],
            "tpr_at_1pct_fpr": one["value"], "tpr_at_1pct_fpr_lo": _ci(one, 0),
            "tpr_at_1pct_fpr_hi": _ci(one, 1), "tpr_1pct_resolved": one["resolved"],
            "epsilon_lower_bound": m["epsilon_lower_bound"]["value"],
            "delta": m["epsilon_lower_bound"]["delta"]}


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per audited hospital, then the overall row."""
    rows = [_row(h, m["model"], m) for h, m in report["per_hospital"].items()]
    return [*rows, _row("overall", "", report["overall"])]


def _cell(entry: dict[str, Any], flag: bool = False) -> str:
    text = f"{entry['value']:.3f}"
    if entry.get("ci") is not None:
        text += f" ({entry['ci'][0]:.2f}–{entry['ci'][1]:.2f})"
    return text + (" †" if flag and not entry["resolved"] else "")


def audit_table(report: dict[str, Any]) -> Table:
    """Per hospital and overall: pairs, AUROC, TPR at 0.1 % and 1 % FPR (95 % CI), ε_lb."""
    populations = [*report["per_hospital"].items(), ("overall", report["overall"])]
    rows = [[name, m["members"], _cell(m["auroc"]),
             _cell(m["tpr_at_fpr"][fpr_key(0.001)], True),
             _cell(m["tpr_at_fpr"][fpr_key(0.01)], True),
             m["epsilon_lower_bound"]["value"]] for name, m in populations]
    return Table(f"membership inference ({report['attack']['name']} attack) on "
                 f"{report['strategy']} final model(s)",
                 ["population", "pairs", "attack AUROC", "TPR@0.1%FPR", "TPR@1%FPR", "ε lb"],
                 rows)


NOTES = ("pairs: members = non-members. (lo–hi): 95 % percentile bootstrap interval. "
         "†: fewer non-members than 1/FPR, so no threshold has a false-positive rate in "
         "(0, FPR]: the value is interpolated towards the first false positive — do not rely "
         "on it. ε lb: empirical lower bound on ε (Clopper–Pearson, docs/privacy.md); an "
         "AUROC near 0.5 and ε lb = 0 mean this attack found no leakage, not that there is none.")


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write audit.json, audit.csv and audit.md into ``out``."""
    write_json(out / "audit.json", report)
    with open(out / "audit.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(report))
    header = [f"# Membership-inference audit of `{report['run']}`", "",
              f"- strategy: **{report['strategy']}**; audited by {report['auditor']}",
              f"- attack: {report['attack']['method']}",
              f"- candidates: {report['candidates']}",
              f"- overall: {report['overall']['method']}",
              f"- revealed: {report['reveals']}", ""]
    text = "\n".join(header) + "\n" + to_markdown(audit_table(report)) + "\n" + NOTES + "\n"
    (out / "audit.md").write_text(text)
