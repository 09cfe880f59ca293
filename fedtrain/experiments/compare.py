"""`crypten-fl compare`: per-disease AUROC, cost and privacy of several runs side by side.

Quality comes from RUN/eval/metrics.json when the run was evaluated, else from the
RUN/test_metrics.json training wrote; cost from RUN/comm.json (bytes per party per round,
seconds per round, total seconds); ε spent from RUN/privacy.json (the largest over hospitals);
measured leakage from RUN/audit/audit.json when the run was audited (`crypten-fl audit`: attack
AUROC, TPR at 1 % FPR and the empirical ε lower bound of the overall row; blank otherwise).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json, write_json
from crypten_fl.common.outdir import atomic_output_dir, check_output_dir
from crypten_fl.common.writing import write_errors
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.evaluate.plots import grouped_bars
from crypten_fl.fedtrain.evaluate.tables import Table, to_markdown
from crypten_fl.fedtrain.privacy.audit import headline
from crypten_fl.fedtrain.run.privacy_json import epsilon_spent

COST_COLUMNS = ("bytes_per_party_per_round", "seconds_per_round", "total_seconds")
AUDIT_COLUMNS = ("attack_auroc", "attack_tpr_at_1pct_fpr", "epsilon_lower_bound")


@dataclass
class CompareResult:
    """Where the comparison went, the label names and one row per run."""

    out_dir: Path
    label_names: list[str]
    rows: list[dict[str, Any]]


def _hospital_epsilon(privacy: dict[str, Any] | None) -> float | None:
    """ε of --central-dp (hospital-level, no colluding hospitals); None without it."""
    central = (privacy or {}).get("central_dp") or {}
    return central.get("epsilon")


def _audit(run: Path) -> dict[str, Any]:
    """The audit columns of RUN/audit/audit.json (None each when the run was not audited)."""
    path = run / "audit" / "audit.json"
    if not path.is_file():
        return {"attack": None, **dict.fromkeys(AUDIT_COLUMNS)}
    report = read_json(path)
    values = headline(report)
    if any(math.isnan(v) for v in values.values()):
        raise UserError(f"{path}: no overall attack figures in it (re-run `crypten-fl audit`)")
    return {"attack": (report.get("attack") or {}).get("name"), **values}


def read_run(run: Path) -> dict[str, Any]:
    """One comparison row: strategy, per-disease AUROC, macro AUROC, cost, ε spent, leakage."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"{run}: run directory not found")
    source = run / "eval" / "metrics.json"
    if not source.is_file():
        source = run / "test_metrics.json"
    if not source.is_file():
        raise UserError(f"{run}: neither eval/metrics.json nor test_metrics.json "
                        "(train the run, or evaluate it, first)")
    metrics = _object(source, {})
    try:
        overall = metrics["overall"]
        auroc = {name: float(m["auroc"]) for name, m in overall["labels"].items()}
        macro = float(overall["macro"]["auroc"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{source}: no per-disease AUROC in it ({err})") from err
    comm = _object(run / "comm.json", {})
    privacy = _object(run / "privacy.json", None)
    metrics = {**metrics, "strategy": algorithm(metrics.get("strategy", "?"),
                                                _object(run / "config.json", {}))}
    for key in ("bytes_communicated_per_party_per_round", "seconds_per_round", "total_seconds"):
        if not isinstance(comm.get(key), int | float | None) or isinstance(comm.get(key), bool):
            raise UserError(f"{run / 'comm.json'}: {key} is not a number")
    try:
        return _row(run, metrics, source, auroc, macro, comm, privacy)
    except (AttributeError, TypeError, KeyError) as err:
        raise UserError(f"{run / 'privacy.json'}: not in the expected form ({err})") from None


def algorithm(strategy: str, config: dict[str, Any]) -> str:
    """The strategy with what changes its optimisation: a server optimizer other than plain
    FedAvg and FedProx's μ (e.g. ``horizontal · fedadam η=0.01 · prox μ=0.01``)."""
    if not isinstance(config, dict) or not config:
        return strategy
    parts = [strategy]
    try:
        settings = TrainConfig.from_json({"fed": "", **config}).server_settings()
        shares = strategies.get(strategy).shares_updates
    except (UserError, TypeError, ValueError, KeyError):
        return strategy
    if settings.problems():
        return strategy
    if shares and not settings.is_plain_fedavg():
        parts.append(f"{settings.name} η={settings.resolved()[0]:g}")
    if shares and float(config.get("prox_mu") or 0) > 0:
        parts.append(f"prox μ={float(config['prox_mu']):g}")
    return " · ".join(parts)


def _object(path: Path, default: Any) -> Any:
    """A JSON object from ``path`` (``default`` if the file is absent)."""
    if not path.is_file():
        return default
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _row(run: Path, metrics: dict[str, Any], source: Path, auroc: dict[str, float],
         macro: float, comm: dict[str, Any], privacy: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "run": str(run), "strategy": metrics.get("strategy", "?"),
        "source": str(source.relative_to(run)), "auroc": auroc, "macro_auroc": macro,
        "bytes_per_party_per_round": comm.get("bytes_communicated_per_party_per_round"),
        "seconds_per_round": comm.get("seconds_per_round"),
        "total_seconds": comm.get("total_seconds"),
        "dp": bool(privacy and privacy.get("dp_sgd")), "epsilon_spent": epsilon_spent(privacy),
        "hospital_epsilon": _hospital_epsilon(privacy),
        **_audit(run),
    }


def run_names(runs: list[Path]) -> list[str]:
    """Short unique names: the directory name, with its parent where names repeat."""
    names = [Path(r).name for r in runs]
    if len(set(names)) == len(names):
        return names
    longer = [f"{Path(r).parent.name}/{Path(r).name}" for r in runs]
    return longer if len(set(longer)) == len(longer) else [f"{n} ({i})"
                                                            for i, n in enumerate(longer, 1)]


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def comparison_table(labels: list[str], rows: list[dict[str, Any]]) -> Table:
    """One row per run: AUROC per disease, macro AUROC, cost, measured leakage and ε spent.

    The leakage columns are blank for runs without RUN/audit/; "ε lb" (measured lower bound)
    stands next to "ε spent" (DP-SGD's per-stay upper bound) and "hospital ε" (--central-dp's
    hospital-level upper bound).
    """
    body = [[r["name"], r["strategy"], *(r["auroc"].get(n, math.nan) for n in labels),
             r["macro_auroc"], *(_rounded(r[c]) if c.startswith("bytes") else r[c]
                                 for c in COST_COLUMNS),
             r.get("attack") or "", *("" if r.get(c) is None else r[c] for c in AUDIT_COLUMNS),
             r["epsilon_spent"] if r["dp"] else "no DP",
             "" if r.get("hospital_epsilon") is None else r["hospital_epsilon"]] for r in rows]
    return Table("test AUROC per disease, cost and privacy per run",
                 ["run", "strategy", *labels, "macro", "bytes/party/round", "s/round",
                  "total s", "attack", "attack AUROC", "TPR@1%FPR", "ε lb", "ε spent",
                  "hospital ε"], body)


def compare(runs: list[Path], out: Path, overwrite: bool = False) -> CompareResult:
    """Compare ``runs``; write compare.json, .csv, .md and compare_auroc.png into ``out``."""
    if not runs:
        raise UserError("compare: give at least one run directory")
    reads = {"RUNS": runs}
    check_output_dir(out, overwrite, reads=reads, command="compare")
    rows = [read_run(r) for r in runs]
    for row, name in zip(rows, run_names(runs), strict=True):
        row["name"] = name
    labels = list(dict.fromkeys(n for r in rows for n in r["auroc"]))
    table = comparison_table(labels, rows)
    with (atomic_output_dir(out, overwrite, reads=reads, command="compare") as tmp,
          write_errors(out)):
        write_json(tmp / "compare.json", {"label_names": labels, "runs": rows})
        with open(tmp / "compare.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(table.columns)
            writer.writerows(["" if v is None else v for v in row] for row in table.rows)
        (tmp / "compare.md").write_text(to_markdown(table))
        series = {r["name"]: [*(r["auroc"].get(n, math.nan) for n in labels), r["macro_auroc"]]
                  for r in rows}
        grouped_bars(tmp / "compare_auroc.png", [*labels, "macro"], series, "test AUROC",
                     "AUROC per disease and run", reference=0.5)
    return CompareResult(Path(out), labels, rows)
