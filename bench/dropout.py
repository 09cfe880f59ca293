"""Hospitals killed mid-round: how long until the round completes, rounds lost, final AUROC.

    .venv/bin/python bench/dropout.py --cohort demo-output/cohort [--rounds 10] [--seed 7]

For each scenario (1 of 4 hospitals, 2 of 8 hospitals killed with SIGKILL in the middle of
round --kill-round, just before their masked update is revealed) the same federation is trained
once without faults and once with the kills and ``--min-hospitals`` = survivors. Reported: the
seconds the faulty round took at the survivors (vs the median of the other rounds), the time the
survivors spent re-forming the secure group, rounds lost (configured − completed), and the final
macro-AUROC of both runs. Writes bench/out/dropout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from crypten_fl.fedtrain.config import TrainConfig  # noqa: E402
from crypten_fl.fedtrain.run.coordinator import train  # noqa: E402
from crypten_fl.mimic_etl.partition import partition  # noqa: E402

from bench.machine import describe  # noqa: E402

SCENARIOS = {"1 of 4": (4, [2]), "2 of 8": (8, [3, 6])}


def _round_seconds(run: Path) -> dict[int, float]:
    """Slowest hospital's wall seconds per round (from metrics.jsonl)."""
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        out[row["round"]] = max(h["seconds"] for h in row["hospitals"].values())
    return out


def _scenario(fed: Path, work: Path, killed: list[int], args: argparse.Namespace
              ) -> dict[str, Any]:
    hospitals = len(list(fed.glob("hospital_*")))
    work.mkdir(parents=True, exist_ok=True)
    base = {"fed": str(fed), "rounds": args.rounds, "seed": args.seed,
            "local_epochs": args.local_epochs}
    clean = train(TrainConfig(**base), work / "clean")
    os.environ["CRYPTEN_FL_KILL_AT"] = ",".join(f"{h}:{args.kill_round}" for h in killed)
    try:
        faulty = train(TrainConfig(**base, min_hospitals=hospitals - len(killed)),
                       work / "faulty")
    finally:
        del os.environ["CRYPTEN_FL_KILL_AT"]
    seconds = _round_seconds(faulty.run_dir)
    others = [s for r, s in seconds.items() if r != args.kill_round]
    reformed = faulty.comm["membership"]["reformed"]
    return {
        "hospitals": hospitals, "killed": killed, "kill_round": args.kill_round,
        "faulty_round_seconds": seconds[args.kill_round],
        "median_other_round_seconds": statistics.median(others),
        "reform_seconds": [r["seconds"] for r in reformed],
        "rounds_configured": args.rounds, "rounds_completed": faulty.rounds_completed,
        "rounds_lost": args.rounds - faulty.rounds_completed,
        "macro_auroc_no_fault": clean.test_metrics["overall"]["macro"]["auroc"],
        "macro_auroc_with_fault": faulty.test_metrics["overall"]["macro"]["auroc"],
        "finished": faulty.comm["membership"]["finished"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--kill-round", type=int, default=3)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    print("machine:", json.dumps(describe()), flush=True)
    rows = []
    (ROOT / "out").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        for name in args.only.split(","):
            n, killed = SCENARIOS[name]
            fed = Path(tmp) / f"fed{n}"
            partition(args.cohort, fed, hospitals=n, seed=args.seed)
            row = {"scenario": name, **_scenario(fed, Path(tmp) / f"runs{n}", killed, args)}
            rows.append(row)
            print(f"{name}: faulty round {row['faulty_round_seconds']:.1f} s "
                  f"(other rounds {row['median_other_round_seconds']:.1f} s; re-forming "
                  f"{', '.join(f'{s:.1f}' for s in row['reform_seconds'])} s), rounds lost "
                  f"{row['rounds_lost']}, macro-AUROC {row['macro_auroc_with_fault']:.3f} vs "
                  f"{row['macro_auroc_no_fault']:.3f} without the fault", flush=True)
    (ROOT / "out" / "dropout.json").write_text(json.dumps({"machine": describe(), "rows": rows},
                                                          indent=2))


if __name__ == "__main__":
    main()
