"""Entry point of one party process (a hospital, or the TTP dealer).

Started by fedtrain.launch locally or by ``crypten-fl node`` on a hospital's own machine. It reads
the torch.distributed rendezvous from the environment (RENDEZVOUS, WORLD_SIZE, RANK,
DISTRIBUTED_BACKEND), joins CrypTen with explicit collective timeouts, runs one job function and
writes its result to ``<workdir>/result.json``. Progress goes to ``<workdir>/events.jsonl``.

    python -m fedtrain.party --job fedtrain.jobs.stats:run --spec SPEC.json --workdir DIR
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUIRED_ENV = ("RENDEZVOUS", "WORLD_SIZE", "RANK", "DISTRIBUTED_BACKEND")


@dataclass
class PartyContext:
    """What a job function gets: its rank, the world size, its own work dir, an event sink."""

    rank: int
    world_size: int
    workdir: Path
    spec: dict[str, Any]

    def emit(self, event: str, **fields: Any) -> None:
        """Append a progress event (read by the launcher for the live display)."""
        record = {"event": event, "rank": self.rank, "time": time.time(), **fields}
        with open(self.workdir / "events.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")


def resolve(job: str) -> Callable[[PartyContext], dict[str, Any]]:
    """Import ``module:function``."""
    module, _, name = job.partition(":")
    return getattr(importlib.import_module(module), name)


def init_crypten(timeout_s: float, ttp: bool) -> None:
    """Join the CrypTen world described by the environment, with explicit timeouts."""
    missing = [k for k in REQUIRED_ENV if k not in os.environ]
    if missing:  # crypten.init() would silently start a 1-party world
        raise RuntimeError(f"party environment incomplete: {', '.join(missing)} not set")
    from fedtrain.compat import crypten, set_collective_timeout

    set_collective_timeout(timeout_s)
    crypten.cfg.communicator.verbose = True  # CrypTen counts bytes and rounds only when verbose
    if ttp:
        crypten.cfg.mpc.provider = "TTP"
    crypten.init()
    from fedtrain.secure import audit

    audit.install()


def run_ttp_server(timeout_s: float) -> None:
    """The trusted third party dealer of Beaver triples (rank = world size)."""
    from fedtrain.compat import crypten, set_collective_timeout

    set_collective_timeout(timeout_s)
    crypten.cfg.mpc.provider = "TTP"
    crypten.mpc.provider.TTPServer()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedtrain.party")
    parser.add_argument("--job", help="module:function run in this party")
    parser.add_argument("--spec", type=Path, help="JSON job specification for this party")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ttp", action="store_true", help="use a TTP dealer for triples")
    parser.add_argument("--ttp-server", action="store_true", help="run as the TTP dealer")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.ttp_server:
            run_ttp_server(args.timeout)
            return 0
        spec = json.loads(args.spec.read_text()) if args.spec else {}
        init_crypten(args.timeout, args.ttp)
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        ctx = PartyContext(rank, world_size, args.workdir, spec)
        result = resolve(args.job)(ctx)
        tmp = args.workdir / "result.json.tmp"
        tmp.write_text(json.dumps(result, default=str))
        os.replace(tmp, args.workdir / "result.json")
        ctx.emit("done")
        from fedtrain.compat import crypten

        crypten.uninit()
        return 0
    except BaseException as err:  # report, then fail: the launcher stops the other parties
        message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        (args.workdir / "error.json").write_text(json.dumps({"message": message,
                                                            "time": time.time()}))
        traceback.print_exc(file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
