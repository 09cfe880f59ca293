"""Secure aggregation of a 1M-parameter vector across N parties vs a plain gloo all-reduce.

    .venv/bin/python bench/secure_aggregation.py [--parties 2,4,8,16,32] [--elements 1000000]

For each N: one process per party (the project's launcher), each measuring in the same run
(a) the project's SecureAggregator.sum (CrypTen shares, pairwise masks, one reveal),
(b) a plain float32 gloo all_reduce of the same vector, and (c) with --textbook, CrypTen's
textbook recipe (cryptensor per party, add, get_plain_text). Wall seconds are the median of
--repeats calls (max over parties), CPU seconds per party are process CPU time per call.
Writes bench/out/secure_aggregation.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from crypten_fl.fedtrain.launch import launch  # noqa: E402

from bench.machine import describe  # noqa: E402


def _timed(fn: Any, repeats: int) -> tuple[float, float]:
    import torch.distributed as dist

    walls, cpus = [], []
    for _ in range(repeats):
        dist.barrier()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def _wire_bytes(interface: str | None) -> int:
    """Bytes sent plus received so far on this machine's ``interface`` (0 without one)."""
    if interface is None:
        return 0
    stats = Path("/sys/class/net") / interface / "statistics"
    return sum(int((stats / f"{way}_bytes").read_text()) for way in ("tx", "rx"))


def job(ctx: Any) -> dict[str, Any]:
    """Runs inside each party process (spec ``wire_interface``: also count that link's bytes)."""
    import torch.distributed as dist
    from crypten_fl.fedtrain.compat import crypten
    from crypten_fl.fedtrain.secure.aggregator import SecureAggregator

    n, repeats = ctx.spec["elements"], ctx.spec["repeats"]
    x = torch.randn(n, generator=torch.Generator().manual_seed(ctx.rank))
    agg = SecureAggregator(degree=ctx.spec.get("degree"))
    agg.sum(x)  # warm-up
    comm = crypten.communicator.get()
    before = comm.get_communication_stats()["bytes"]
    wire = _wire_bytes(ctx.spec.get("wire_interface"))
    secure = _timed(lambda: agg.sum(x), repeats)
    secure_bytes = (comm.get_communication_stats()["bytes"] - before) / repeats
    wire = (_wire_bytes(ctx.spec.get("wire_interface")) - wire) / repeats
    group = comm.main_group
    plain = _timed(lambda: dist.all_reduce(x.clone(), group=group), repeats)
    out = {"secure_s": secure[0], "secure_cpu_s": secure[1], "secure_bytes": secure_bytes,
           "plain_s": plain[0], "plain_cpu_s": plain[1], "plain_bytes": 2 * 4 * n}
    if ctx.spec.get("wire_interface"):
        out["secure_wire_bytes"] = wire
    if ctx.spec.get("textbook"):
        def textbook() -> None:
            total = None
            for src in range(ctx.world_size):
                enc = crypten.cryptensor(x, src=src)
                total = enc if total is None else total + enc
            total.get_plain_text()
        out["textbook_s"], out["textbook_cpu_s"] = _timed(textbook, max(1, repeats // 2))
    return out


def summarize(res: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the parties' results: wall = slowest party, CPU and bytes = mean."""
    row = {
        "parties": len(res),
        "secure_s": max(r["secure_s"] for r in res),
        "plain_s": max(r["plain_s"] for r in res),
        "secure_cpu_s_per_party": statistics.mean(r["secure_cpu_s"] for r in res),
        "plain_cpu_s_per_party": statistics.mean(r["plain_cpu_s"] for r in res),
        "secure_bytes_per_party": statistics.mean(r["secure_bytes"] for r in res),
        "plain_bytes_per_party": res[0]["plain_bytes"],
    }
    row["ratio"] = row["secure_s"] / row["plain_s"]
    if "textbook_s" in res[0]:
        row["textbook_s"] = max(r["textbook_s"] for r in res)
    if "secure_wire_bytes" in res[0]:
        row["secure_wire_bytes_per_party"] = statistics.mean(r["secure_wire_bytes"] for r in res)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", default="2,4,8,16,32")
    parser.add_argument("--elements", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--degree", type=int, default=None, help="mask-graph degree (None=all)")
    parser.add_argument("--textbook", action="store_true", help="also time CrypTen's recipe")
    args = parser.parse_args()
    machine = describe()
    print("machine:", json.dumps(machine))
    rows = []
    header = (f"{'parties':>7} {'secure s':>9} {'plain s':>8} {'ratio':>6} {'sec cpu s':>9} "
              f"{'MB/party':>9}" + (f" {'textbook s':>10}" if args.textbook else ""))
    print(header)
    for n in [int(p) for p in args.parties.split(",")]:
        spec = {"elements": args.elements, "repeats": args.repeats, "degree": args.degree,
                "textbook": args.textbook}
        with tempfile.TemporaryDirectory() as tmp:
            env = {"PYTHONPATH": str(ROOT.parent)}
            res = launch("bench.secure_aggregation:job", [spec] * n, Path(tmp), timeout_s=300,
                         env=env)
        row = summarize(res)
        rows.append(row)
        line = (f"{n:>7} {row['secure_s']:>9.3f} {row['plain_s']:>8.3f} {row['ratio']:>6.2f} "
                f"{row['secure_cpu_s_per_party']:>9.3f} "
                f"{row['secure_bytes_per_party'] / 1e6:>9.1f}")
        if args.textbook:
            line += f" {row['textbook_s']:>10.3f}"
        print(line, flush=True)
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "secure_aggregation.json").write_text(json.dumps(
        {"machine": machine, "elements": args.elements, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
