"""Secure aggregation across namespace "hosts" (veth + bridge) vs the same parties on loopback.

    sudo .venv/bin/python bench/netns_aggregation.py [--parties 4] [--elements 1000000]
        [--repeats 7] [--runs 3] [--rate-gbit 1] [--delay-ms 1]

The party job of bench/secure_aggregation.py (the project's SecureAggregator.sum and a plain
float32 gloo all-reduce of the same vector) runs in one ``python -m fedtrain.party`` process per
party, started identically in two settings: every party in the caller's namespace with a
127.0.0.1 rendezvous, and every party in its own network namespace on a private bridge
(tests/helpers/netns.py) with rank 0's namespace address as rendezvous. With --rate-gbit and/or
--delay-ms, a third setting shapes every link (tbf rate limit both ways; netem delay at each
host's egress, so RTT = 2 x delay; needs the kernel's netem). Wall seconds are medians of
--repeats calls (slowest party), then the median over --runs fresh sets of processes with the
settings interleaved (run 1 of each, run 2 of each, ...). Bytes per party: CrypTen's count and,
in namespaces, what crossed the party's own link (TCP/IP headers included). Needs root (or
CAP_SYS_ADMIN and CAP_NET_ADMIN). Writes bench/out/netns_aggregation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT.parent), str(ROOT.parent / "tests")]

from crypten_fl.fedtrain.launch import free_port  # noqa: E402
from helpers.netns import (  # noqa: E402
    INTERFACE,
    LinkShape,
    NetworkUnavailable,
    check_available,
    virtual_network,
)

from bench.machine import describe  # noqa: E402
from bench.secure_aggregation import summarize  # noqa: E402

JOB = "bench.secure_aggregation:job"
PORT = 29500  # free in a fresh namespace
Popen = Callable[..., subprocess.Popen]


def run_parties(start: Popen, n: int, rendezvous: str, spec: dict[str, Any], workdir: Path,
                env: dict[str, str]) -> list[dict[str, Any]]:
    """Start ``n`` party processes with ``start(rank, argv, **popen_kwargs)``; their results."""
    processes = []
    for rank in range(n):
        pdir = workdir / f"party_{rank}"
        pdir.mkdir(parents=True)
        (pdir / "spec.json").write_text(json.dumps(spec))
        argv = [sys.executable, "-m", "crypten_fl.fedtrain.party", "--job", JOB, "--spec",
                str(pdir / "spec.json"), "--workdir", str(pdir), "--timeout", "300"]
        party_env = {**os.environ, **env, "RANK": str(rank), "WORLD_SIZE": str(n),
                     "RENDEZVOUS": rendezvous, "DISTRIBUTED_BACKEND": "gloo",
                     "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT.parent)}
        with open(pdir / "party.log", "w") as log:
            processes.append(start(rank, argv, env=party_env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    try:
        codes = [p.wait(timeout=600) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(codes):
        logs = "\n".join((workdir / f"party_{r}" / "party.log").read_text()[-800:]
                         for r, c in enumerate(codes) if c)
        raise RuntimeError(f"party exit codes {codes}:\n{logs}")
    return [json.loads((workdir / f"party_{r}" / "result.json").read_text()) for r in range(n)]


def on_loopback(n: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Every party in this namespace, rendezvous on 127.0.0.1."""
    with tempfile.TemporaryDirectory() as tmp:
        res = run_parties(lambda _rank, argv, **kw: subprocess.Popen(argv, **kw), n,
                          f"tcp://127.0.0.1:{free_port()}", spec, Path(tmp), {})
    return summarize(res)


def on_hosts(n: int, spec: dict[str, Any], shape: LinkShape | None) -> dict[str, Any]:
    """Every party in its own namespace on a private bridge; gloo bound to its link."""
    with tempfile.TemporaryDirectory() as tmp, virtual_network(n, shape) as net:
        res = run_parties(net.popen, n, f"tcp://{net.hosts[0].address}:{PORT}",
                          {**spec, "wire_interface": INTERFACE}, Path(tmp),
                          {"GLOO_SOCKET_IFNAME": INTERFACE})
    return summarize(res)


def _line(name: str, row: dict[str, Any]) -> str:
    """One table line: seconds, ratio, MB per party (CrypTen count, on the party's link)."""
    wire = row.get("secure_wire_bytes_per_party")
    return (f"{name:<34} {row['secure_s']:>9.3f} {row['plain_s']:>8.3f} {row['ratio']:>6.2f} "
            f"{row['secure_bytes_per_party'] / 1e6:>9.1f} "
            f"{'-' if wire is None else f'{wire / 1e6:.1f}':>10}")


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over runs (ratio = median secure / median plain)."""
    keys = [k for k in rows[0] if k != "parties"]
    out = {k: statistics.median(r[k] for r in rows) for k in keys}
    out["ratio"] = out["secure_s"] / out["plain_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=4)
    parser.add_argument("--elements", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7, help="calls per run (median)")
    parser.add_argument("--runs", type=int, default=3, help="fresh sets of processes per setting")
    parser.add_argument("--rate-gbit", type=float, default=None, help="shaped link rate")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="shaped one-way delay")
    args = parser.parse_args()
    try:
        check_available()
    except NetworkUnavailable as err:
        sys.exit(f"netns_aggregation: {err}")
    machine = describe()
    print("machine:", json.dumps(machine))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    spec = {"elements": args.elements, "repeats": args.repeats, "degree": None}
    settings: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("loopback (127.0.0.1)", lambda: on_loopback(args.parties, spec)),
        ("namespaces (veth + bridge)", lambda: on_hosts(args.parties, spec, None)),
    ]
    if args.rate_gbit or args.delay_ms:
        shape = LinkShape(delay_ms=args.delay_ms, rate_gbit=args.rate_gbit)
        label = ", ".join(part for part in (
            f"{args.rate_gbit:g} Gbit/s" if args.rate_gbit else "",
            f"{args.delay_ms:g} ms delay" if args.delay_ms else "") if part)
        settings.append((f"namespaces, {label}", lambda: on_hosts(args.parties, spec, shape)))
    print(f"{args.parties} parties, {args.elements:,} elements, median of {args.repeats} calls; "
          f"{args.runs} runs, settings interleaved")
    print(f"{'run':<4}{'network':<34} {'secure s':>9} {'plain s':>8} {'ratio':>6} "
          f"{'MB/party':>9} {'MB on link':>10}")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in settings}
    unavailable: dict[str, str] = {}
    for run in range(1, args.runs + 1):
        for name, measure in settings:
            if name in unavailable:
                continue
            try:
                runs[name].append(measure())
            except NetworkUnavailable as err:  # e.g. a kernel without netem for --delay-ms
                unavailable[name] = str(err)
                print(f"{run:<4}{name:<34} not measured: {err}", flush=True)
                continue
            print(f"{run:<4}{_line(name, runs[name][-1])}", flush=True)
    rows = [{"network": name, "unavailable": unavailable[name]} if name in unavailable
            else {"network": name, **_median(runs[name]), "runs": runs[name]}
            for name, _ in settings]
    print("median over runs:")
    for row in rows:
        if "unavailable" not in row:
            print(f"    {_line(row['network'], row)}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "netns_aggregation.json").write_text(json.dumps(
        {"machine": machine, "parties": args.parties, "elements": args.elements,
         "repeats": args.repeats, "load_average": os.getloadavg()[0], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
