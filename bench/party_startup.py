"""What starting the hospital processes of a launch costs (fedtrain/party_process.py).

    .venv/bin/python bench/party_startup.py [--parties 4] [--repeats 5]

Prints, on this machine:
- a fresh interpreter importing what a party needs (torch, CrypTen, Opacus, polars, pyarrow and
  the party module): wall and CPU seconds, median of ``--repeats``; and ``--parties`` of them at
  once, as a launch that started every party from scratch would;
- a whole ``launch()`` of ``--parties`` parties of a job that returns at once (each party joins
  the federation over the authenticated TLS links, then ends): the first launch of a process
  (which starts the template) and the median of the later ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.machine import describe  # noqa: E402

PARTY_IMPORTS = ("import crypten_fl.fedtrain.party; from crypten_fl.fedtrain.compat import crypten;"
                 " import opacus, polars, pyarrow.parquet")


def noop(ctx: Any) -> dict[str, Any]:
    """The job of the launch measured: nothing but joining."""
    return {"rank": ctx.rank}


def fresh_imports(parties: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``parties`` fresh interpreters importing a party's libraries."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    running = [subprocess.Popen([sys.executable, "-c", PARTY_IMPORTS]) for _ in range(parties)]
    for p in running:
        if p.wait() != 0:
            raise RuntimeError("the party imports failed")
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def launch_seconds(parties: int) -> float:
    from crypten_fl.fedtrain.launch import launch

    with tempfile.TemporaryDirectory(prefix="party-startup-") as work:
        began = time.perf_counter()
        results = launch("bench.party_startup:noop", [{}] * parties, Path(work))
        seconds = time.perf_counter() - began
    if [r["rank"] if r else None for r in results] != list(range(parties)):
        raise RuntimeError(f"the launch returned {results}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    one = [fresh_imports(1) for _ in range(args.repeats)]
    many = [fresh_imports(args.parties) for _ in range(args.repeats)]
    first = launch_seconds(args.parties)
    later = [launch_seconds(args.parties) for _ in range(args.repeats)]
    figures = {
        "machine": describe(),
        "parties": args.parties,
        "repeats": args.repeats,
        "fresh_import_one_wall_s": statistics.median(w for w, _ in one),
        "fresh_import_one_cpu_s": statistics.median(c for _, c in one),
        "fresh_import_all_parties_wall_s": statistics.median(w for w, _ in many),
        "fresh_import_all_parties_cpu_s": statistics.median(c for _, c in many),
        "launch_first_s": first,
        "launch_later_median_s": statistics.median(later),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
