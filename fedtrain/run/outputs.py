"""RUN/ files the coordinator writes from the hospitals' results: test metrics, cost, privacy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedtrain.run.config import TrainConfig
from mimic_etl.manifest import write_json


def write_run_outputs(work: Path, config: TrainConfig, results: list[dict[str, Any]],
                      elapsed: float, start_round: int) -> None:
    """Write test_metrics.json, comm.json and privacy.json into the run directory."""
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
    })
    write_json(work / "privacy.json", {
        "dp_sgd": config.dp_epsilon is not None,
        "target_epsilon": config.dp_epsilon,
        "hospitals": {str(res["hospital"]): res["privacy"] for res in results},
    })
