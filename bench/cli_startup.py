"""How fast the command line answers: `crypten-fl --help` and every `COMMAND --help`.

    .venv/bin/python bench/cli_startup.py [--repeats 10]

Runs the installed console script as a user would (a fresh process each time) and prints the
median wall time per command. Target (issue 14): <= 0.3 s each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.machine import describe  # noqa: E402

COMMANDS = ["", "synth", "extract", "partition", "train", "evaluate", "compare", "sweep", "audit",
            "node", "provision"]


def seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print("machine:", json.dumps(describe()))
    script = str(Path(sys.executable).with_name("crypten-fl"))
    rows = {}
    for command in COMMANDS:
        argv = [script, *([command] if command else []), "--help"]
        rows[command or "(none)"] = seconds(argv, args.repeats)
        print(f"crypten-fl {command + ' ' if command else ''}--help: "
              f"{rows[command or '(none)']:.3f} s", flush=True)
    print(f"slowest: {max(rows.values()):.3f} s (target 0.3 s)")


if __name__ == "__main__":
    main()
