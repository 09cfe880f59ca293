"""Every strategy on one federation: macro-AUROC, seconds and bytes per round, cost vs plaintext.

    .venv/bin/python bench/strategies.py --cohort COHORT --hospitals 4 --rounds 10 \
        [--only horizontal,split] [--seed 7]

Partitions COHORT into a 4-hospital non-IID federation and a 3-party vertical one (same cohort),
trains each configuration with the same seed, and prints one row per run. Writes
bench/out/strategies.json; docs/strategies.md quotes the latest figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from crypten_fl.fedtrain.config import TrainConfig  # noqa: E402
from crypten_fl.fedtrain.run.coordinator import train  # noqa: E402
from crypten_fl.mimic_etl.partition import partition  # noqa: E402

from bench.machine import describe  # noqa: E402

RUNS: dict[str, dict[str, Any]] = {
    "horizontal-plain": {"strategy": "horizontal", "secure": False},
    "horizontal": {"strategy": "horizontal"},
    "centralized": {"strategy": "centralized"},
    "local": {"strategy": "local"},
    "fedper": {"strategy": "fedper"},
    "fedmtl": {"strategy": "fedmtl"},
    "split": {"strategy": "split"},
    "vertical": {"strategy": "vertical"},
    "horizontal-dp3": {"strategy": "horizontal", "dp_epsilon": 3.0},
}


def _row(name: str, summary: Any, seconds: float) -> dict[str, Any]:
    comm = summary.comm
    per_party = comm.get("bytes_communicated_per_party_per_round") or 0
    return {
        "run": name,
        "macro_auroc": summary.test_metrics["overall"]["macro"]["auroc"],
        "seconds_per_round": comm["seconds_per_round"],
        "bytes_per_party_per_round": per_party,
        "total_seconds": seconds,
        "epsilon": max((h or {}).get("epsilon", 0) for h in summary.privacy["hospitals"].values())
        if summary.privacy["dp_sgd"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--hospitals", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--local-epochs", type=int, default=1,
                        help="local epochs per round (centralized/vertical: epochs per round)")
    parser.add_argument("--only", default=",".join(RUNS))
    args = parser.parse_args()
    machine = describe()
    print("machine:", json.dumps(machine), flush=True)
    rows: list[dict[str, Any]] = []
    (ROOT / "out").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        work = Path(tmp)
        partition(args.cohort, work / "fed", hospitals=args.hospitals, seed=args.seed)
        partition(args.cohort, work / "vfed", hospitals=None, vertical=True, seed=args.seed)
        print(f"{'run':18} {'AUROC':>6} {'s/round':>8} {'MB/party/round':>15} {'vs plain':>8} "
              f"{'eps':>5}", flush=True)
        for name in args.only.split(","):
            options = dict(RUNS[name])
            fed = work / ("vfed" if options["strategy"] == "vertical" else "fed")
            config = TrainConfig(fed=str(fed), rounds=args.rounds, seed=args.seed,
                                 local_epochs=args.local_epochs, **options)
            began = time.perf_counter()
            summary = train(config, work / name)
            row = _row(name, summary, time.perf_counter() - began)
            rows.append(row)
            base = next((r for r in rows if r["run"] == "horizontal-plain"), None)
            ratio = row["seconds_per_round"] / base["seconds_per_round"] if base else float("nan")
            row["time_vs_plain_horizontal"] = ratio
            eps = f"{row['epsilon']:.2f}" if row["epsilon"] else "-"
            print(f"{name:18} {row['macro_auroc']:6.3f} {row['seconds_per_round']:8.2f} "
                  f"{row['bytes_per_party_per_round'] / 1e6:15.2f} {ratio:8.2f} {eps:>5}",
                  flush=True)
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / f"strategies_r{args.rounds}_e{args.local_epochs}.json").write_text(json.dumps(
        {"machine": machine, "rounds": args.rounds, "local_epochs": args.local_epochs,
         "hospitals": args.hospitals,
         "cohort": str(args.cohort), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
