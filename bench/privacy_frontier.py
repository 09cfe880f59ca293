"""The measured privacy–utility frontier: task AUROC against membership-inference leakage.

    .venv/bin/python bench/privacy_frontier.py --fed demo-output/fed [--seed 7] \
        [--only horizontal,horizontal-dp1] [--shadow horizontal,horizontal-dp1] \
        [--central-noise 0.01,0.1] [--rounds 25 --local-epochs 4 --dropout 0]

Trains, on one federation and with one seed, every strategy and DP setting in the overfitting
configuration of docs/privacy.md (fedtrain.privacy.audit.OVERFITTING: 25 rounds × 4 local
epochs, no dropout — long enough for the model to overfit, so that leakage is measurable),
audits each run with `crypten-fl audit` (loss attack; also the shadow attack for --shadow rows),
and prints one row per run: task macro-AUROC (pooled test histograms), attack AUROC, TPR at 1 %
FPR, empirical ε lower bound, and the ε the accountant spent. Rows: each strategy (vertical is
reported as not auditable), horizontal with DP-SGD at ε = 1, 3, 10 (ε = ∞ is the horizontal
row), and horizontal with hospital-level central DP at the --central-noise multipliers (skipped
with a note when this checkout's TrainConfig has no central-DP fields). Writes
bench/out/privacy_frontier.json (after every row) and bench/out/privacy_frontier.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from crypten_fl.fedtrain.config import TrainConfig  # noqa: E402
from crypten_fl.fedtrain.privacy.audit import OVERFITTING, AuditOptions, audit  # noqa: E402
from crypten_fl.fedtrain.run.coordinator import train  # noqa: E402

from bench.machine import describe  # noqa: E402

STRATEGIES = ("horizontal", "centralized", "local", "fedper", "fedmtl", "split")
DP_EPSILONS = (1.0, 3.0, 10.0)
CENTRAL_FIELDS = {"central_dp", "central_noise_multiplier"}


def planned_rows(central_noise: list[float]) -> dict[str, dict[str, Any]]:
    """Run name → TrainConfig options (on top of the overfitting configuration)."""
    rows: dict[str, dict[str, Any]] = {s: {"strategy": s} for s in STRATEGIES}
    rows |= {f"horizontal-dp{e:g}": {"strategy": "horizontal", "dp_epsilon": e}
             for e in DP_EPSILONS}
    rows |= {f"horizontal-cdp-z{z:g}": {"strategy": "horizontal", "central_dp": True,
                                        "central_noise_multiplier": z} for z in central_noise}
    return rows


def _epsilon(summary: Any) -> dict[str, float | None]:
    privacy = summary.privacy
    spent = [h["epsilon"] for h in privacy.get("hospitals", {}).values() if h]
    central = privacy.get("central_dp") or {}
    return {"dp_sgd_epsilon": max(spent) if privacy.get("dp_sgd") and spent else None,
            "central_epsilon": central.get("epsilon")}


def _attack(report: dict[str, Any]) -> dict[str, Any]:
    overall = report["overall"]
    return {"attack_auroc": overall["auroc"]["value"], "attack_auroc_ci": overall["auroc"]["ci"],
            "tpr_at_1pct_fpr": overall["tpr_at_fpr"]["0.01"]["value"],
            "tpr_at_0.1pct_fpr": overall["tpr_at_fpr"]["0.001"]["value"],
            "epsilon_lower_bound": overall["epsilon_lower_bound"]["value"],
            "per_hospital_auroc": {h: m["auroc"]["value"]
                                   for h, m in report["per_hospital"].items()}}


def run_row(name: str, options: dict[str, Any], args: argparse.Namespace, work: Path,
            shadow: bool) -> dict[str, Any]:
    """Train one configuration, audit it, return its row."""
    config = TrainConfig(fed=str(args.fed), seed=args.seed, rounds=args.rounds,
                         local_epochs=args.local_epochs, dropout=args.dropout, **options)
    began = time.perf_counter()
    summary = train(config, work / name)
    trained = time.perf_counter() - began
    row: dict[str, Any] = {"run": name, **options, "train_seconds": trained,
                           "macro_auroc": summary.test_metrics["overall"]["macro"]["auroc"],
                           **_epsilon(summary)}
    began = time.perf_counter()
    row["loss"] = _attack(audit(AuditOptions(run=work / name, seed=args.seed,
                                             bootstrap=args.bootstrap)).report)
    row["audit_seconds"] = time.perf_counter() - began
    if shadow:
        began = time.perf_counter()
        report = audit(AuditOptions(run=work / name, seed=args.seed, attack="shadow",
                                    bootstrap=args.bootstrap, out=work / f"{name}-shadow"))
        row["shadow"] = _attack(report.report)
        row["shadow_seconds"] = time.perf_counter() - began
    return row


def _print(row: dict[str, Any]) -> None:
    def eps() -> str:
        if row.get("dp_sgd_epsilon") is not None:
            return f"{row['dp_sgd_epsilon']:.2f} (DP-SGD)"
        if row.get("central_epsilon") is not None:
            return f"{row['central_epsilon']:.3g} (hospital)"
        return "∞"
    for attack in ("loss", "shadow"):
        if attack in row:
            a = row[attack]
            print(f"{row['run']:22} {attack:6} {eps():>18} {row['macro_auroc']:7.3f} "
                  f"{a['attack_auroc']:7.3f} {a['tpr_at_1pct_fpr']:8.3f} "
                  f"{a['epsilon_lower_bound']:6.2f}", flush=True)


def frontier_plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """Task macro-AUROC (x) against attack AUROC and TPR at 1 % FPR (y), one point per run."""
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.4))
    for ax, key, label in zip(axes, ("attack_auroc", "tpr_at_1pct_fpr"),
                              ("attack AUROC (loss attack)", "TPR at 1 % FPR (loss attack)"),
                              strict=True):
        for row in rows:
            x, y = row["macro_auroc"], row["loss"][key]
            colour = ("tab:red" if row.get("dp_epsilon") else "tab:green"
                      if row.get("central_dp") else "tab:blue")
            ax.scatter([x], [y], color=colour)
            ax.annotate(row["run"], (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.axhline(0.5 if key == "attack_auroc" else 0.01, ls="--", lw=0.8, color="grey")
        ax.set_xlabel("task macro-AUROC (test)")
        ax.set_ylabel(label)
    fig.suptitle("privacy–utility frontier (blue: strategies, red: DP-SGD, green: central DP)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fed", type=Path, default=Path("demo-output/fed"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=OVERFITTING["rounds"])
    parser.add_argument("--local-epochs", type=int, default=OVERFITTING["local_epochs"])
    parser.add_argument("--dropout", type=float, default=OVERFITTING["dropout"])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--central-noise", default="0.01,0.1",
                        help="central-DP noise multipliers z (noise std of the sum = z·clip)")
    parser.add_argument("--only", default=None, help="comma-separated run names")
    parser.add_argument("--shadow", default="horizontal,horizontal-dp1",
                        help="runs also audited with the shadow (LiRA) attack")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs in this dir")
    args = parser.parse_args()
    machine = describe()
    print("machine:", json.dumps(machine), flush=True)
    rows = planned_rows([float(z) for z in args.central_noise.split(",") if z])
    if args.only:
        rows = {k: v for k, v in rows.items() if k in args.only.split(",")}
    has_central = {f.name for f in dataclasses.fields(TrainConfig)} >= CENTRAL_FIELDS
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    work = args.keep or Path(tempfile.mkdtemp(dir=out, prefix="privacy_frontier-"))
    done: list[dict[str, Any]] = []
    notes = ["vertical: not auditable by one party (secret-shared top model), not run"]
    print(f"{'run':22} {'attack':6} {'ε (accountant)':>18} {'task':>7} {'attack':>7} "
          f"{'TPR@1%':>8} {'ε_lb':>6}\n{'':22} {'':6} {'':>18} {'AUROC':>7} {'AUROC':>7}",
          flush=True)
    try:
        for name, options in rows.items():
            if options.get("central_dp") and not has_central:
                notes.append(f"{name}: skipped, TrainConfig has no central-DP fields yet")
                print(f"note: {notes[-1]}", flush=True)
                continue
            row = run_row(name, options, args, work, name in args.shadow.split(","))
            done.append(row)
            _print(row)
            (out / "privacy_frontier.json").write_text(json.dumps(
                {"machine": machine, "fed": str(args.fed), "seed": args.seed,
                 "rounds": args.rounds, "local_epochs": args.local_epochs,
                 "dropout": args.dropout, "notes": notes, "rows": done}, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    for note in notes:
        print("note:", note)
    if done:
        frontier_plot(out / "privacy_frontier.png", done)


if __name__ == "__main__":
    main()
