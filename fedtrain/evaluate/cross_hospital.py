"""Leave-one-hospital-out: how much of its performance a strategy keeps on an unseen hospital.

For each hospital h: a sub-federation of the other hospitals (symlinks to their directories,
renumbered 0 … K−2, plus a partition.json; no patient data is copied) is trained with the run's
strategy and options; then every hospital evaluates: the training hospitals on their own test
splits ("seen", pooled), h on its test split ("unseen"). Thresholds come from the training
hospitals' validation data only. Unseen hospitals of personalised strategies (local, fedper,
fedmtl) use the unweighted mean of the training hospitals' final models (the shared part is the
same everywhere, so this is the shared part with the mean of the personal layers).

Per metric (macro averages): retained % = unseen / seen × 100; drop % = how much worse unseen is,
relative to seen: 100 − retained for metrics where higher is better, retained − 100 for the MSE.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json, write_json
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.evaluate.parties import EvalSettings, EventFn, evaluate_parties
from crypten_fl.fedtrain.evaluate.runs import RunInfo
from crypten_fl.fedtrain.run.coordinator import train

METRICS = ("auroc", "accuracy", "precision", "recall", "f1", "specificity", "mse")
LOWER_IS_BETTER = frozenset({"mse"})


def check_possible(strategy: str, n_hospitals: int) -> None:
    """Raise UserError if leave-one-hospital-out makes no sense for this run."""
    if strategies.get(strategy).partition == "vertical":
        raise UserError(f"--cross-hospital: a {strategy} run has no leave-one-hospital-out (its "
                        "parties hold different features of the same stays, not other patients)")
    if n_hospitals < 2:
        raise UserError("--cross-hospital needs a run with at least 2 hospitals")


def subfederation(fed: Path, held_out: int, n_hospitals: int, out: Path) -> dict[int, int]:
    """Write ``out`` = FED without hospital ``held_out``; returns {original index: new index}."""
    out.mkdir(parents=True)
    members = [k for k in range(n_hospitals) if k != held_out]
    for new, old in enumerate(members):
        (out / f"hospital_{new}").symlink_to((fed / f"hospital_{old}").resolve(),
                                             target_is_directory=True)
    write_json(out / "partition.json", {
        "derived_from": str(fed.resolve()), "vertical": False, "hospitals": len(members),
        "held_out_hospital": held_out, "hospital_map": {str(n): o for n, o in enumerate(members)},
    })
    return {old: new for new, old in enumerate(members)}


def retained(seen: float, unseen: float, metric: str) -> tuple[float, float]:
    """(retained %, drop %) of one metric; NaN where seen is 0 or a value is NaN."""
    if not (math.isfinite(seen) and math.isfinite(unseen)) or seen == 0:
        return math.nan, math.nan
    kept = 100.0 * unseen / seen
    return kept, (kept - 100.0 if metric in LOWER_IS_BETTER else 100.0 - kept)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def summarise(folds: dict[int, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Table II: per metric, seen and unseen (means over held-out hospitals), retained and drop;
    plus the same per held-out hospital.

    Args:
        folds: held-out hospital → {"seen": macro metrics, "unseen": macro metrics}.
    """
    per_hospital: dict[str, Any] = {}
    for h, fold in sorted(folds.items()):
        row: dict[str, Any] = {}
        for m in METRICS:
            kept, drop = retained(fold["seen"][m], fold["unseen"][m], m)
            row[m] = {"seen": fold["seen"][m], "unseen": fold["unseen"][m],
                      "retained_pct": kept, "drop_pct": drop}
        per_hospital[f"hospital_{h}"] = row
    summary: dict[str, Any] = {}
    for m in METRICS:
        seen = _mean([f["seen"][m] for f in folds.values()])
        unseen = _mean([f["unseen"][m] for f in folds.values()])
        kept, drop = retained(seen, unseen, m)
        summary[m] = {"seen": seen, "unseen": unseen, "retained_pct": kept, "drop_pct": drop}
    return {"summary": summary, "per_hospital": per_hospital}


def leave_one_hospital_out(info: RunInfo, settings: EvalSettings, work: Path, final: Path,
                           seed: int, progress: ProgressFn = no_progress) -> dict[str, Any]:
    """Train without each hospital in turn and evaluate seen vs unseen.

    Sub-federations and fold runs are written to ``work``, a directory that will be moved to
    ``final`` (the fold runs' config.json already name their federation there).
    """
    config = dataclasses.replace(info.config, seed=seed)
    fed, n = Path(info.config.fed), len(info.hospitals)
    folds: dict[int, dict[str, Any]] = {}
    details: dict[str, Any] = {}
    for h in range(n):
        progress("leave-one-hospital-out folds", h, n)
        fold = work / f"without_hospital_{h}"
        index = subfederation(fed, h, n, fold / "fed")
        run = fold / "run"
        try:
            train(dataclasses.replace(config, fed=str(fold / "fed")), run,
                  on_event=_round_progress(progress, h, config.rounds))
        except UserError as err:
            raise UserError(f"--cross-hospital, training without hospital {h}: {err}") from None
        shutil.rmtree(run / "checkpoints", ignore_errors=True)
        result = evaluate_parties(info, run, settings, subgroups=False,
                                  model_index={k: index.get(k) for k in range(n)})
        _relocate_config(run, final / fold.name / "fed")
        unseen = result.per_hospital.get(f"hospital_{h}")
        if unseen is None:
            raise UserError(f"{info.hospitals[h].path}: no test stays to evaluate on")
        folds[h] = {"seen": result.pooled["macro"], "unseen": unseen["macro"]}
        details[f"hospital_{h}"] = {"run": str(Path(final.name) / fold.name / "run"),
                                    "thresholds": result.thresholds,
                                    "seen": result.pooled, "unseen": unseen}
    progress("leave-one-hospital-out folds", n, n)
    return {**summarise(folds), "folds": details, "seed": seed}


def _relocate_config(run: Path, fed: Path) -> None:
    config = read_json(run / "config.json")
    write_json(run / "config.json", {**config, "fed": str(fed)})


def _round_progress(progress: ProgressFn, held_out: int, rounds: int) -> EventFn:
    def on_event(rank: int, event: dict[str, Any]) -> None:
        if event.get("event") == "round":
            progress(f"training without hospital {held_out}: rounds", int(event["round"]),
                     rounds)
    return on_event
