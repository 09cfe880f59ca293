"""Launch the evaluation job in one process per hospital and assemble what they return.

``evaluate_parties`` returns an :class:`Evaluation`: thresholds, pooled metrics, each hospital's
own metrics, subgroup metrics and the pooled test histograms (for ROC curves). The secure path
builds them from the revealed sums only; the plain path pools the hospitals' predictions here, in
the coordinator (the insecure reference).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from crypten_fl.fedtrain.evaluate.runs import RunInfo
from crypten_fl.fedtrain.evaluate.subgroups import FAMILIES, SUBGROUPS, membership
from crypten_fl.fedtrain.evaluate.summary import exact_metrics, metrics_from_summary, split_summary
from crypten_fl.fedtrain.evaluate.thresholds import ThresholdRule, choose_thresholds
from crypten_fl.fedtrain.launch import launch
from crypten_fl.fedtrain.metrics.classification import histogram_counts

JOB = "crypten_fl.fedtrain.evaluate.job:run"
EventFn = Callable[[int, dict[str, Any]], None]


@dataclass
class Evaluation:
    """What one evaluation of a model on the hospitals' own data produced."""

    thresholds: dict[str, dict[str, Any]]  # label → {"value", "fallback"}
    pooled: dict[str, Any]  # metrics over the contributing hospitals' test stays
    per_hospital: dict[str, dict[str, Any]]  # "hospital_<k>" → {"n", "unseen", metrics}
    subgroups: dict[str, dict[str, dict[str, Any]]] | None  # family → group → metrics
    histograms: tuple[np.ndarray, np.ndarray]  # pooled test (pos, neg), each (L, B)
    method: str


@dataclass(frozen=True)
class EvalSettings:
    """Options shared by every launch of one `evaluate` command."""

    secure: bool
    bins: int
    rule: ThresholdRule


def _specs(info: RunInfo, model_run: Path, settings: EvalSettings, subgroups: bool,
           model_index: dict[int, int | None]) -> list[dict[str, Any]]:
    unseen = any(v is None for v in model_index.values())
    return [{
        "config": info.config.to_json(), "run_dir": str(model_run),
        "hospital_dirs": [str(h.path)], "hospital": h.index, "n_hospitals": len(info.hospitals),
        "model_index": model_index[h.index], "average_for_unseen": unseen,
        "contributes_statistics": model_index[h.index] is not None,
        "secure": settings.secure, "bins": settings.bins, "subgroups": subgroups,
        "threshold": {"name": settings.rule.name, "value": settings.rule.value},
    } for h in info.hospitals]


def evaluate_parties(info: RunInfo, model_run: Path, settings: EvalSettings, *,
                     subgroups: bool, model_index: dict[int, int | None] | None = None,
                     workdir: Path | None = None, on_event: EventFn | None = None
                     ) -> Evaluation:
    """Evaluate ``model_run``'s final model(s) at every hospital of ``info``.

    Args:
        subgroups: also compute the per-subgroup summaries.
        model_index: hospital → its index in ``model_run`` (None: held out, "unseen"); default:
            every hospital is itself.
        workdir: the parties' work dirs (default: a new temporary directory). Removed after
            success; kept after a party failure, whose message names the party's log in it.
    """
    index = model_index or {h.index: h.index for h in info.hospitals}
    specs = _specs(info, model_run, settings, subgroups, index)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="crypten-fl-evaluate-"))
    results = launch(JOB, specs, work, timeout_s=info.config.timeout,
                     threads_per_party=info.config.threads_per_party, ttp=info.vertical,
                     on_event=on_event, party_name=lambda r: f"hospital {specs[r]['hospital']}",
                     secure_transport=not info.config.insecure_transport)
    try:
        assemble = _assemble_secure if settings.secure else _assemble_plain
        return assemble(results, info.label_names, settings, subgroups)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _threshold_table(names: list[str], values: np.ndarray, fallback: np.ndarray
                     ) -> dict[str, dict[str, Any]]:
    return {n: {"value": float(v), "fallback": bool(f)}
            for n, v, f in zip(names, values, fallback, strict=True)}


def _by_subgroup(metrics: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {family: {} for family in FAMILIES}
    for (family, group), m in zip(SUBGROUPS, metrics, strict=True):
        out[family][group] = m
    return out


def _assemble_secure(results: list[dict[str, Any]], names: list[str], settings: EvalSettings,
                     subgroups: bool) -> Evaluation:
    bins = settings.bins
    if any(r["thresholds"] != results[0]["thresholds"] for r in results):
        raise RuntimeError("hospitals derived different thresholds from the same sums")
    pooled = np.load(results[0]["pooled_file"])
    pos, neg, _, _ = split_summary(pooled["test"], len(names), bins)
    per_hospital = {f"hospital_{r['hospital']}": {"n": r["n_test"], "unseen": r["unseen"],
                                                 **r["own"]}
                    for r in results if "own" in r}
    groups = None
    if subgroups:
        groups = _by_subgroup([metrics_from_summary(v, names, bins) for v in pooled["subgroups"]])
    return Evaluation(
        thresholds=_threshold_table(names, np.array(results[0]["thresholds"]),
                                    np.array(results[0]["fallback"])),
        pooled=metrics_from_summary(pooled["test"], names, bins), per_hospital=per_hospital,
        subgroups=groups, histograms=(pos, neg),
        method=f"secure: summed histograms ({bins} bins) and confusion counts")


def _assemble_plain(results: list[dict[str, Any]], names: list[str], settings: EvalSettings,
                    subgroups: bool) -> Evaluation:
    data = [dict(np.load(r["predictions_file"])) for r in results]
    seen = [d for d, r in zip(data, results, strict=True) if not r["unseen"]]

    def stack(key: str, parts: list[dict[str, np.ndarray]]) -> np.ndarray:
        return np.concatenate([d[key] for d in parts])

    val_pos, val_neg = histogram_counts(stack("val_probs", seen), stack("val_labels", seen),
                                        settings.bins)
    thresholds, fallback = choose_thresholds(val_pos, val_neg, settings.rule)
    probs, labels = stack("test_probs", seen), stack("test_labels", seen)
    per_hospital = {
        f"hospital_{r['hospital']}": {"n": r["n_test"], "unseen": r["unseen"],
                                      **exact_metrics(d["test_probs"], d["test_labels"], names,
                                                      thresholds)}
        for d, r in zip(data, results, strict=True) if r["n_test"]}
    groups = None
    if subgroups:
        attributes = {k[len("attr_"):]: stack(k, seen).tolist()
                      for k in seen[0] if k.startswith("attr_")}
        masks = membership(attributes, len(labels))
        groups = _by_subgroup([exact_metrics(probs[m], labels[m], names, thresholds)
                               for m in masks])
    return Evaluation(
        thresholds=_threshold_table(names, thresholds, fallback),
        pooled=exact_metrics(probs, labels, names, thresholds), per_hospital=per_hospital,
        subgroups=groups, histograms=histogram_counts(probs, labels, settings.bins),
        method="plain: exact metrics on pooled predictions (insecure reference path)")
