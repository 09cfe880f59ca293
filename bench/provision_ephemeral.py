"""Time `provision_ephemeral`: the throw-away federation `crypten-fl train` creates per run.

Each repetition writes a fresh federation (CA, one key and certificate per party, federation.json
in every kit) into a new private temporary directory and loads every kit back with `load_kit`
(what each party does at start-up); the median and the slowest of the repetitions are printed.

Usage: ``.venv/bin/python bench/provision_ephemeral.py [--parties 2,4,8,32] [--repeat 30]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crypten_fl.fedtrain.identity import load_kit, provision_ephemeral

from bench.machine import describe


def _once(hospitals: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        kits = provision_ephemeral(Path(directory), hospitals, ttp=True)
        written = time.perf_counter()
        for kit in kits.iterdir():
            load_kit(kit)
        return written - start, time.perf_counter() - written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", default="2,4,8,32", help="hospital counts (plus a TTP)")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(describe())
    print("hospitals  provision median / max (ms)  load all kits median / max (ms)")
    for hospitals in (int(p) for p in args.parties.split(",")):
        _once(hospitals)  # warm-up
        runs = [_once(hospitals) for _ in range(args.repeat)]
        write, load = ([r[i] * 1e3 for r in runs] for i in (0, 1))
        print(f"{hospitals:9d}  {statistics.median(write):12.1f} / {max(write):6.1f}"
              f"  {statistics.median(load):18.1f} / {max(load):6.1f}")


if __name__ == "__main__":
    main()
