"""Every strategy and server optimizer on one federation: macro-AUROC (pooled and per hospital),
rounds to reach 98 % of the final validation AUROC, seconds and bytes per round.

    .venv/bin/python bench/strategies.py --cohort COHORT --hospitals 4 [--rounds R] \
        [--local-epochs E] [--only horizontal,fedadam] [--set lr=0.003] [--seed 7]

Partitions COHORT into a 4-hospital non-IID federation and a 3-party vertical one (same cohort),
trains each configuration with the same seed (the training defaults unless --rounds,
--local-epochs or --set say otherwise), and prints one row per run. Writes
bench/out/strategies_*.json; docs/strategies.md quotes the latest figures.
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
    "fedavg": {"strategy": "horizontal", "server_opt": "fedavg", "server_lr": 1.0},
    "fedavgm": {"strategy": "horizontal", "server_opt": "fedavgm"},
    "fedadam": {"strategy": "horizontal", "server_opt": "fedadam"},
    "fedyogi": {"strategy": "horizontal", "server_opt": "fedyogi"},
    "fedadagrad": {"strategy": "horizontal", "server_opt": "fedadagrad"},
    "fedprox": {"strategy": "horizontal", "server_opt": "fedavg", "server_lr": 1.0,
                "prox_mu": 0.01},
    "fedadam-plain": {"strategy": "horizontal", "server_opt": "fedadam", "secure": False},
}


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as TrainConfig overrides (JSON values, else strings)."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tfn" else value
    return out


def rounds_to_reach(run: Path, fraction: float = 0.98) -> int | None:
    """The first round whose validation macro-AUROC (mean over hospitals) reaches ``fraction``
    of the last round's."""
    curve = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        values = [h["val_macro_auroc"] for h in json.loads(line)["hospitals"].values()
                  if h.get("val_macro_auroc") is not None]
        curve.append(sum(values) / len(values) if values else None)
    if not curve or curve[-1] is None:
        return None
    return next(i for i, v in enumerate(curve, 1) if v is not None and v >= fraction * curve[-1])


def _row(name: str, summary: Any, seconds: float, run: Path) -> dict[str, Any]:
    comm = summary.comm
    per_party = comm.get("bytes_communicated_per_party_per_round") or 0
    return {
        "run": name,
        "macro_auroc": summary.test_metrics["overall"]["macro"]["auroc"],
        "per_hospital_auroc": {h: m["macro"]["auroc"]
                               for h, m in summary.test_metrics["per_hospital"].items()},
        "rounds_to_98pct": rounds_to_reach(run),
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
    parser.add_argument("--rounds", type=int, default=None, help="default: the training default")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--local-epochs", type=int, default=None,
                        help="local epochs per round (centralized/vertical: epochs per round); "
                             "default: the training default")
    parser.add_argument("--only", default=",".join(RUNS))
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TrainConfig field for every run (repeatable), e.g. lr=0.003")
    args = parser.parse_args()
    overrides: dict[str, Any] = {k: v for k, v in (("rounds", args.rounds),
                                                   ("local_epochs", args.local_epochs))
                                 if v is not None}
    overrides.update(parse_set(args.set))
    defaults = TrainConfig(fed="", **overrides)
    machine = describe()
    print("machine:", json.dumps(machine), flush=True)
    rows: list[dict[str, Any]] = []
    (ROOT / "out").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        work = Path(tmp)
        partition(args.cohort, work / "fed", hospitals=args.hospitals, seed=args.seed)
        partition(args.cohort, work / "vfed", hospitals=None, vertical=True, seed=args.seed)
        print(f"rounds {defaults.rounds}, local epochs {defaults.local_epochs}, lr {defaults.lr}, "
              f"server optimizer {defaults.server_opt} (overrides: {overrides})", flush=True)
        print(f"{'run':18} {'AUROC':>6} {'s/round':>8} {'MB/party/round':>15} {'vs plain':>8} "
              f"{'eps':>5} {'→98%':>5}  per hospital", flush=True)
        for name in args.only.split(","):
            options = dict(RUNS[name])
            fed = work / ("vfed" if options["strategy"] == "vertical" else "fed")
            config = TrainConfig(fed=str(fed), seed=args.seed, **{**overrides, **options})
            began = time.perf_counter()
            summary = train(config, work / name)
            row = _row(name, summary, time.perf_counter() - began, work / name)
            rows.append(row)
            base = next((r for r in rows if r["run"] == "horizontal-plain"), None)
            ratio = row["seconds_per_round"] / base["seconds_per_round"] if base else float("nan")
            row["time_vs_plain_horizontal"] = ratio
            eps = f"{row['epsilon']:.2f}" if row["epsilon"] else "-"
            hospitals = " ".join(f"{v:.3f}" for _, v in sorted(row["per_hospital_auroc"].items()))
            print(f"{name:18} {row['macro_auroc']:6.3f} {row['seconds_per_round']:8.2f} "
                  f"{row['bytes_per_party_per_round'] / 1e6:15.2f} {ratio:8.2f} {eps:>5} "
                  f"{row['rounds_to_98pct'] or '-':>5}  {hospitals}", flush=True)
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / f"strategies_r{defaults.rounds}_e{defaults.local_epochs}.json").write_text(json.dumps(
        {"machine": machine, "rounds": defaults.rounds, "local_epochs": defaults.local_epochs,
         "overrides": overrides, "hospitals": args.hospitals,
         "cohort": str(args.cohort), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
