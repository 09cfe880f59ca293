"""What the authenticated channels cost: the same work over TLS links vs plain TCP (gloo).

    .venv/bin/python bench/transport.py [--parties 4,16] [--elements 1000000]
    .venv/bin/python bench/transport.py --parties "" --fed demo-output/fed

1. Secure aggregation of ``--elements`` parameters (the project's SecureAggregator.sum: encoding,
   pairwise masks, one all-reduce) at each number of parties, in one launch per transport;
   medians of ``--repeats`` calls, wall = slowest party. Also the world's set-up time per member
   (TLS handshakes and hellos with every peer).
2. With ``--fed``: seconds per round of ``crypten-fl train`` with ``--strategy horizontal`` and
   ``--strategy split`` (the default model, or ``--model tiny``; ``--rounds`` rounds, same seed)
   over each transport.

Targets (issue 11): aggregation ≤ 1.3× plain TCP at 4 and 16 parties; horizontal round ≤ 1.05×,
split round ≤ 1.2×. Writes bench/out/transport.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from crypten_fl.fedtrain.launch import launch  # noqa: E402

from bench.machine import describe  # noqa: E402
from bench.secure_aggregation import _timed  # noqa: E402

TRANSPORTS = {"tls": True, "tcp": False}
TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32, "head_hidden": 16}


def job(ctx: Any) -> dict[str, Any]:
    """Inside each party: time SecureAggregator.sum (and report the world's set-up time)."""
    import torch
    from crypten_fl.fedtrain.secure.aggregator import SecureAggregator
    from crypten_fl.fedtrain.transport import process_group

    x = torch.randn(ctx.spec["elements"], generator=torch.Generator().manual_seed(ctx.rank))
    agg = SecureAggregator()
    agg.sum(x)  # warm-up
    wall, cpu = _timed(lambda: agg.sum(x), ctx.spec["repeats"])
    return {"wall_s": wall, "cpu_s": cpu, "setup_s": process_group.connect_seconds()}


def aggregation(parties: list[int], elements: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    print(f"{'parties':>7} {'tls s':>8} {'tcp s':>8} {'ratio':>6} {'tls cpu':>8} {'tcp cpu':>8} "
          f"{'set-up s':>8}")
    for n in parties:
        row: dict[str, Any] = {"parties": n}
        for name, secure in TRANSPORTS.items():
            spec = {"elements": elements, "repeats": repeats}
            with tempfile.TemporaryDirectory() as tmp:
                res = launch("bench.transport:job", [spec] * n, Path(tmp), timeout_s=300,
                             env={"PYTHONPATH": str(ROOT.parent)}, secure_transport=secure)
            row[f"{name}_s"] = max(r["wall_s"] for r in res)
            row[f"{name}_cpu_s"] = statistics.mean(r["cpu_s"] for r in res)
            if secure:
                row["setup_s_per_member"] = statistics.mean(r["setup_s"] for r in res)
        row["ratio"] = row["tls_s"] / row["tcp_s"]
        rows.append(row)
        print(f"{n:>7} {row['tls_s']:>8.3f} {row['tcp_s']:>8.3f} {row['ratio']:>6.2f} "
              f"{row['tls_cpu_s']:>8.3f} {row['tcp_cpu_s']:>8.3f} "
              f"{row['setup_s_per_member']:>8.3f}", flush=True)
    return rows


def rounds(fed: Path, strategy: str, n_rounds: int, seed: int, model: dict[str, int]
           ) -> dict[str, Any]:
    """Seconds per round of a short run of ``strategy`` over each transport (same seed)."""
    from crypten_fl.fedtrain.config import TrainConfig
    from crypten_fl.fedtrain.run.coordinator import train

    row: dict[str, Any] = {"strategy": strategy, "fed": str(fed), "rounds": n_rounds}
    for name, secure in TRANSPORTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(fed=str(fed), strategy=strategy, rounds=n_rounds, seed=seed,
                                 insecure_transport=not secure, **model)
            summary = train(config, Path(tmp) / "run")
            lines = (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
        # the round itself (local training + every exchange), slowest hospital, median round:
        # start-up and the final evaluation are the same work on both transports
        per_round = [max(h["seconds"] for h in json.loads(x)["hospitals"].values())
                     for x in lines]
        row[f"{name}_s_per_round"] = statistics.median(per_round)
        row[f"{name}_macro_auroc"] = summary.test_metrics["overall"]["macro"]["auroc"]
    row["ratio"] = row["tls_s_per_round"] / row["tcp_s_per_round"]
    print(f"{strategy:>10}: tls {row['tls_s_per_round']:.2f} s/round, tcp "
          f"{row['tcp_s_per_round']:.2f} s/round, ratio {row['ratio']:.3f}; macro-AUROC "
          f"{row['tls_macro_auroc']:.4f} vs {row['tcp_macro_auroc']:.4f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", default="4,16")
    parser.add_argument("--elements", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fed", type=Path, help="a federation for the round-time comparison")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", choices=("default", "tiny"), default="default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    machine = describe()
    print("machine:", json.dumps(machine))
    result: dict[str, Any] = {"machine": machine, "elements": args.elements}
    result["aggregation"] = aggregation([int(p) for p in args.parties.split(",") if p],
                                        args.elements, args.repeats)
    if args.fed:
        model = TINY if args.model == "tiny" else {}
        result["rounds"] = [rounds(args.fed, s, args.rounds, args.seed, model)
                            for s in ("horizontal", "split")]
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "transport.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
