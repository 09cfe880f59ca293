"""RUN/ files the coordinator writes from the hospitals' results: test metrics, cost, privacy,
update validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crypten_fl.common.manifest import write_json
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.updates.central_dp import privacy_record


def write_run_outputs(work: Path, config: TrainConfig, results: list[dict[str, Any]],
                      elapsed: float, start_round: int,
                      dropouts: list[dict[str, Any]] | None = None,
                      pretraining: dict[str, Any] | None = None) -> None:
    """Write test_metrics.json, comm.json, privacy.json (and validation.json) into the run dir.

    ``results`` are the hospitals that finished; ``dropouts`` lists those that dropped out;
    ``pretraining``: the provenance of the public model the run started from (--init-from).
    """
    rounds_run = max(config.rounds - start_round, 0)
    per_hospital: dict[str, Any] = {}
    for res in results:
        per_hospital.update(res["test"])
    overall = results[0]["overall"]
    write_json(work / "test_metrics.json", {
        "strategy": config.strategy,
        "secure": config.secure,
        "overall": overall,
        "per_hospital": per_hospital,
    })
    parties = {str(res["hospital"]): res["comm"] for res in results}
    # everything CrypTen moved for this party (aggregation, encrypted models, setup), plus the
    # plain baseline's all-reduce when --plain
    sent = [p["crypten_bytes"] + (0 if p["secure"] else p["bytes_communicated"])
            for p in parties.values()]
    agg = [p["aggregation_seconds"] for p in parties.values()]
    write_json(work / "comm.json", {
        "strategy": config.strategy,
        "secure": config.secure,
        "parties": parties,
        "total_seconds": elapsed,
        "rounds_run": rounds_run,
        "seconds_per_round": elapsed / rounds_run if rounds_run else None,
        "bytes_communicated_per_party_per_round": (sum(sent) / len(sent) / rounds_run
                                           if rounds_run else None),
        "aggregation_seconds_max": max(agg),
        "membership": _membership(config, results, dropouts or []),
    })
    hospital_privacy = {str(res["hospital"]): res["privacy"] for res in results}
    write_json(work / "privacy.json", {
        "dp_sgd": config.dp_epsilon is not None,
        "target_epsilon": config.dp_epsilon,
        "hospitals": hospital_privacy,
        "central_dp": _central_dp(config, len(results) + len(dropouts or []), hospital_privacy),
        "pretraining": _pretraining(pretraining, results),
    })
    _write_validation(work, config, results)


def _pretraining(pretraining: dict[str, Any] | None, results: list[dict[str, Any]]
                 ) -> dict[str, Any] | None:
    """The public pretraining the run started from, and the digest of the model each hospital
    started from (None without --init-from)."""
    if pretraining is None:
        return None
    return {**pretraining, "initial_model_sha256": {
        str(res["hospital"]): res.get("initial_model_sha256") for res in results}}


def _central_dp(config: TrainConfig, n_hospitals: int,
                hospital_privacy: dict[str, Any]) -> dict[str, Any] | None:
    """Hospital-level DP of the run (None without --central-dp), with DP-SGD's record-level ε."""
    if not config.central_dp:
        return None
    record_level = ({h: p["epsilon"] for h, p in hospital_privacy.items() if p}
                    if config.dp_epsilon is not None else None)
    return privacy_record(config, n_hospitals, record_level)


def _write_validation(work: Path, config: TrainConfig, results: list[dict[str, Any]]) -> None:
    """validation.json: per hospital, rounds whose update it checked and those it rejected."""
    reports = {str(res["hospital"]): res.get("validation") for res in results}
    if not any(r and r["checked"] for r in reports.values()):
        return  # nothing was shared (local, centralized) or checked (split, vertical)
    write_json(work / "validation.json", {
        "max_update_norm": config.max_update_norm,
        "rejected_per_hospital": {h: r["rejected"] for h, r in reports.items() if r},
        "hospitals": reports,
    })


def _membership(config: TrainConfig, results: list[dict[str, Any]],
                dropouts: list[dict[str, Any]]) -> dict[str, Any]:
    """Who finished, who dropped out after which round, and each re-forming of the group."""
    groups = [res["group"] for res in results if res.get("group")]
    return {
        "min_hospitals": config.min_hospitals,
        "finished": sorted(str(res["hospital"]) for res in results),
        "dropped": dropouts,
        "reformed": groups[0]["reformed"] if groups else [],
    }
