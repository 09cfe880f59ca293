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
        _append_event(self.workdir, record)


def resolve(job: str) -> Callable[[PartyContext], dict[str, Any]]:
    """Import ``module:function``."""
    module, _, name = job.partition(":")
    return getattr(importlib.import_module(module), name)


def init_crypten(timeout_s: float, ttp: bool, min_members: int | None = None,
                 rejoin: bool = False, workdir: Path | None = None) -> None:
    """Join the CrypTen world described by the environment, with explicit timeouts.

    With a ``tcp://`` rendezvous the party joins through a :class:`fedtrain.secure.group.
    SecureGroup`, which can re-form without members that drop out (if ``min_members`` is below
    the world size). ``CRYPTEN_FL_STORE=external`` says the rendezvous store is hosted by
    someone else (the local launcher, or a rendezvous server); otherwise rank 0 hosts it.
    Unless ``CRYPTEN_FL_TRANSPORT=tcp``, every byte goes over the federation's authenticated
    links (fedtrain/transport), with this party's kit from ``CRYPTEN_FL_KIT``; peers refused at
    the handshake are recorded as ``refused`` events in ``workdir``.
    """
    missing = [k for k in REQUIRED_ENV if k not in os.environ]
    if missing:  # crypten.init() would silently start a 1-party world
        raise RuntimeError(f"party environment incomplete: {', '.join(missing)} not set")
    from crypten_fl.fedtrain.compat import crypten, set_collective_timeout
    from crypten_fl.fedtrain.secure import group, reveal_audit

    set_collective_timeout(timeout_s)
    crypten.cfg.communicator.verbose = True  # CrypTen counts bytes and rounds only when verbose
    if ttp:
        crypten.cfg.mpc.provider = "TTP"
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    min_members = world_size if min_members is None else min_members
    _join_transport(world_size, ttp, workdir)
    if os.environ["RENDEZVOUS"].startswith("tcp://"):
        store = group.connect_store(os.environ["RENDEZVOUS"], rank, timeout_s,
                                    host_it=rank == 0 and not _external_store())
        secure_group = group.SecureGroup(store, me=rank, members=list(range(world_size)),
                                         min_members=min_members, timeout_s=timeout_s, ttp=ttp)
        group.install(secure_group)
        if rejoin:  # a hospital that dropped out, restarted: wait to be taken back
            secure_group.request_rejoin()
        else:
            secure_group.join()
    elif min_members < world_size:
        raise RuntimeError("dropout tolerance needs a tcp:// rendezvous")
    else:
        crypten.init()
    reveal_audit.install()


def _join_transport(world_size: int, ttp: bool, workdir: Path | None) -> None:
    """Load the kit and switch torch.distributed to the secure backend (unless tcp)."""
    from crypten_fl.fedtrain.transport import join

    if not join.secure():
        return
    if not os.environ["RENDEZVOUS"].startswith("tcp://"):
        raise RuntimeError("the secure transport needs a tcp://HOST:PORT rendezvous")

    def on_refused(refused: Any) -> None:
        event = {"event": "refused", "peer": refused.address, "reason": refused.reason,
                 "time": time.time(), "rank": int(os.environ["RANK"])}
        if workdir is not None:
            _append_event(workdir, event)
        for observer in _refusal_observers:
            observer(event)

    join.join(on_refused, join.roster(world_size, ttp))


_refusal_observers: list[Callable[[dict[str, Any]], None]] = []


def observe_refusals(observer: Callable[[dict[str, Any]], None]) -> None:
    """Call ``observer`` with each ``refused`` event of this process (``crypten-fl node`` prints
    them as they happen)."""
    _refusal_observers.append(observer)


def _append_event(workdir: Path, record: dict[str, Any]) -> None:
    with open(workdir / "events.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _external_store() -> bool:
    return os.environ.get("CRYPTEN_FL_STORE") == "external"


def run_ttp_server(timeout_s: float, workdir: Path | None = None) -> None:
    """The trusted third party dealer of Beaver triples (rank = world size)."""
    from crypten_fl.fedtrain.compat import crypten, set_collective_timeout, set_group_store

    set_collective_timeout(timeout_s)
    crypten.cfg.mpc.provider = "TTP"
    _join_transport(int(os.environ["WORLD_SIZE"]), True, workdir)
    if os.environ.get("RENDEZVOUS", "").startswith("tcp://"):
        from crypten_fl.fedtrain.secure import group

        store = group.connect_store(os.environ["RENDEZVOUS"], int(os.environ["RANK"]), timeout_s,
                                    host_it=False)
        set_group_store(group.world_store(store, 0))
    from crypten_fl.fedtrain.secure.dealer_noise import NoiseDealer

    NoiseDealer()  # CrypTen's TTPServer, which also deals DP noise (--dp-noise dealer)


def _die_with_launcher() -> None:
    """Ask Linux to SIGKILL this party if the launcher that started it dies (even by kill -9),
    so an interrupted run leaves no orphan writing into it; ``--resume`` then starts clean."""
    parent = os.environ.get("CRYPTEN_FL_LAUNCHER_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(parent):  # the launcher died before the prctl call
        os._exit(1)


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
    _die_with_launcher()
    try:
        if args.ttp_server:
            run_ttp_server(args.timeout, args.workdir)
            return 0
        spec = json.loads(args.spec.read_text()) if args.spec else {}
        init_crypten(args.timeout, args.ttp, spec.get("min_members"), bool(spec.get("rejoin")),
                     args.workdir)
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        ctx = PartyContext(rank, world_size, args.workdir, spec)
        from crypten_fl.fedtrain import faults

        # tests and benchmarks only; nothing without their variables
        faults.install_if_requested(PartyContext)
        result = resolve(args.job)(ctx)
        tmp = args.workdir / "result.json.tmp"
        tmp.write_text(json.dumps(result, default=str))
        os.replace(tmp, args.workdir / "result.json")
        ctx.emit("done")
        from crypten_fl.fedtrain.compat import crypten

        crypten.uninit()
        return 0
    except BaseException as err:  # report, then fail: the launcher stops the other parties
        from crypten_fl.common.errors import UserError

        user = isinstance(err, UserError)  # a message for the user: no type name, no traceback
        message = (str(err) if user else f"{type(err).__name__}: {err}").splitlines()[0][:2000]
        tmp = args.workdir / "error.json.tmp"  # whole or absent: the launcher may be reading
        tmp.write_text(json.dumps({"message": message, "user": user, "time": time.time()}))
        os.replace(tmp, args.workdir / "error.json")
        if not user:  # a UserError is reported by whoever started the party (launcher, node)
            traceback.print_exc(file=sys.stderr)
        return 1


if __name__ == "__main__":
    code = main()
    # the outcome is reported (result.json or error.json): skip interpreter teardown, where
    # gloo's threads may abort the process ("terminate called without an active exception")
    # and turn a finished party into one killed by SIGABRT
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
