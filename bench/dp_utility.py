"""Privacy–utility of DP per strategy: task macro-AUROC without DP and at each ε, the attack
AUROC of `crypten-fl audit` on every run, and the cost of a DP round against a plain one.

    .venv/bin/python bench/dp_utility.py --cohort COHORT [--hospitals 4] [--seed 5] \
        [--strategies horizontal,fedper,split,vertical] [--epsilons inf,8,3,1] \
        [--set FIELD=VALUE ...] [--no-audit] [--tag NAME]

Partitions COHORT into a non-IID (Dirichlet) federation and a vertical one with the same seed,
trains each strategy at each ε with the training defaults (DP runs with the DP recipe) and the
same seed, audits each run with the loss attack (vertical runs cannot be audited by one party),
and prints one row per run. Writes bench/out/dp_utility_<tag>.json, .md and .png;
docs/privacy.md quotes the latest figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from crypten_fl.fedtrain import strategies  # noqa: E402
from crypten_fl.fedtrain.config import TrainConfig  # noqa: E402
from crypten_fl.fedtrain.privacy.audit import AuditOptions, audit  # noqa: E402
from crypten_fl.fedtrain.run.coordinator import train  # noqa: E402
from crypten_fl.fedtrain.run.privacy_json import epsilon_spent  # noqa: E402
from crypten_fl.mimic_etl.partition import partition  # noqa: E402

from bench.machine import describe  # noqa: E402
from bench.strategies import parse_set  # noqa: E402


def _epsilons(text: str) -> list[float | None]:
    return [None if e.strip() in ("inf", "none") else float(e) for e in text.split(",")]


def _attack_auroc(run: Path, strategy: str, seed: int) -> float | None:
    if not strategies.get(strategy).plaintext_model:  # no party holds the model (vertical)
        return None
    report = audit(AuditOptions(run=run, seed=seed, bootstrap=200)).report
    return float(report["overall"]["auroc"]["value"])


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == strategy and r["epsilon_target"]]
        plain = next((r for r in rows if r["strategy"] == strategy
                      and r["epsilon_target"] is None), None)
        line = ax.plot([r["epsilon_target"] for r in mine], [r["macro_auroc"] for r in mine],
                       marker="o", label=strategy)[0]
        if plain is not None:
            ax.axhline(plain["macro_auroc"], color=line.get_color(), linestyle=":", linewidth=1)
    if any(r["epsilon_target"] for r in rows):  # a log axis needs at least one DP run
        ax.set_xscale("log")
    ax.set_xlabel("ε per hospital (dotted: no DP)")
    ax.set_ylabel("test macro-AUROC")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| strategy | ε target | ε spent | macro-AUROC | Δ vs no DP | attack AUROC | "
             "s/round |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['epsilon_target'] or 'no DP'} | "
                     f"{_fmt(r['epsilon_spent'], '.2f')} | {r['macro_auroc']:.3f} | "
                     f"{_fmt(r['delta_vs_no_dp'], '+.3f')} | {_fmt(r['attack_auroc'], '.3f')} | "
                     f"{r['seconds_per_round']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--hospitals", type=int, default=4)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--strategies", default="horizontal,fedper,split,vertical")
    parser.add_argument("--epsilons", default="inf,8,3,1", help="'inf' = no DP")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TrainConfig field for every run (repeatable)")
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--tag", default=None, help="output name (default: the cohort's)")
    args = parser.parse_args()
    overrides = parse_set(args.set)
    tag = args.tag or args.cohort.name
    machine = describe()
    print("machine:", json.dumps(machine), flush=True)
    rows: list[dict[str, Any]] = []
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        work = Path(tmp)
        partition(args.cohort, work / "fed", hospitals=args.hospitals, seed=args.seed)
        partition(args.cohort, work / "vfed", hospitals=None, vertical=True, seed=args.seed)
        print(f"{'strategy':11} {'ε':>5} {'spent':>6} {'AUROC':>6} {'Δ':>7} {'attack':>6} "
              f"{'s/round':>8}", flush=True)
        for strategy in args.strategies.split(","):
            fed = work / ("vfed" if strategies.get(strategy).partition == "vertical" else "fed")
            for epsilon in _epsilons(args.epsilons):
                config = TrainConfig(fed=str(fed), strategy=strategy, seed=args.seed,
                                     **overrides).with_dp_sgd(epsilon)
                run = work / f"{strategy}-{epsilon or 'inf'}"
                began = time.perf_counter()
                summary = train(config, run)
                row: dict[str, Any] = {
                    "strategy": strategy, "epsilon_target": epsilon,
                    "epsilon_spent": epsilon_spent(summary.privacy),
                    "macro_auroc": summary.test_metrics["overall"]["macro"]["auroc"],
                    "seconds_per_round": summary.comm["seconds_per_round"],
                    "total_seconds": time.perf_counter() - began,
                    "dp": summary.privacy["hospitals"] if epsilon else None,
                    "attack_auroc": None if args.no_audit else _attack_auroc(run, strategy,
                                                                             args.seed),
                }
                plain = next((r for r in rows if r["strategy"] == strategy
                              and r["epsilon_target"] is None), None)
                row["delta_vs_no_dp"] = (row["macro_auroc"] - plain["macro_auroc"]
                                         if plain and epsilon else None)
                rows.append(row)
                spent = "-" if row["epsilon_spent"] is None else f"{row['epsilon_spent']:.2f}"
                delta = "" if row["delta_vs_no_dp"] is None else f"{row['delta_vs_no_dp']:+.3f}"
                attack = "-" if row["attack_auroc"] is None else f"{row['attack_auroc']:.3f}"
                print(f"{strategy:11} {epsilon or 'none':>5} {spent:>6} "
                      f"{row['macro_auroc']:6.3f} {delta:>7} {attack:>6} "
                      f"{row['seconds_per_round']:8.1f}", flush=True)
    result = {"machine": machine, "cohort": str(args.cohort), "hospitals": args.hospitals,
              "seed": args.seed, "overrides": overrides, "rows": rows,
              "command": " ".join(sys.argv)}
    (out / f"dp_utility_{tag}.json").write_text(json.dumps(result, indent=2, default=str))
    (out / f"dp_utility_{tag}.md").write_text(_markdown(rows))
    _plot([r for r in rows if not math.isnan(r["macro_auroc"])], out / f"dp_utility_{tag}.png")
    print(f"wrote {out}/dp_utility_{tag}.json, .md and .png", flush=True)


if __name__ == "__main__":
    main()
