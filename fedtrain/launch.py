"""Local launcher: one OS process per party, supervised, results collected through files.

Not ``crypten.mpc.run_multiprocess`` (DESIGN.md §7: returning tensors fails, large returns hang, no
timeout). Each party is its own OS process running ``fedtrain.party`` (forked from a template
that has only imported torch and CrypTen: fedtrain/party_process.py) that gets only its own spec
file (its own hospital directory); the launcher holds no patient data. If a party crashes, the
others are stopped within seconds and a ``PartyFailure`` names the party and its last event.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.distributed as dist
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.party_process import PartyProcess

EventFn = Callable[[int, dict[str, Any]], None]


class PartyFailure(UserError):
    """A party process failed; the message names it, its error and its last reported event."""

    def __init__(self, message: str, rank: int, last_event: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.rank = rank
        self.last_event = last_event


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Party:
    rank: int
    workdir: Path
    process: PartyProcess | subprocess.Popen
    events_read: int = 0
    last_event: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def _party_env(
    rank: int, world_size: int, rendezvous: str, extra: dict[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "RENDEZVOUS")}
    env.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        RENDEZVOUS=rendezvous,
        DISTRIBUTED_BACKEND="gloo",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _poll_events(party: _Party, on_event: EventFn | None) -> None:
    path = party.workdir / "events.jsonl"
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    for line in lines[party.events_read :]:
        if not line.endswith("}"):
            break  # a line still being written
        event = json.loads(line)
        party.events.append(event)
        party.last_event = event
        party.events_read += 1
        if on_event is not None:
            on_event(party.rank, event)


def _stop(parties: list[_Party], grace_s: float = 3.0) -> None:
    for p in parties:
        if p.process.poll() is None:
            p.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in parties:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            p.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            p.process.kill()
            p.process.wait()


def launch(
    job: str,
    specs: list[dict[str, Any]],
    workdir: Path,
    *,
    timeout_s: float = 60.0,
    threads_per_party: int = 1,
    ttp: bool = False,
    env: dict[str, str] | None = None,
    on_event: EventFn | None = None,
    party_name: Callable[[int], str] = lambda r: f"party {r}",
    tolerate_dropouts: bool = False,
    restart_dropped: bool = False,
    secure_transport: bool = True,
) -> list[dict[str, Any] | None]:
    """Run ``job`` in ``len(specs)`` party processes (rank r gets ``specs[r]``); return results.

    Args:
        job: ``module:function`` taking a ``fedtrain.party.PartyContext``, returning JSON data.
        specs: one JSON-serialisable spec per rank; a party sees only its own.
        workdir: parent of the per-party work dirs ``party_<r>/`` (spec, events, result, log).
        timeout_s: collective timeout inside the parties (a stalled peer surfaces after this).
        ttp: also start CrypTen's TTP dealer (rank = number of parties) for Beaver triples.
        on_event: called with (rank, event) for every progress event a party emits; a party
            that fails while others go on is reported as ``{"event": "dropped", "reason": ...}``.
        tolerate_dropouts: let the other parties go on when one fails (they re-form their secure
            group, see fedtrain/secure/group.py); the result of a failed party is None. The run
            fails only if no party finishes.
        restart_dropped: with ``tolerate_dropouts``, start a party that dropped out once more,
            with ``"rejoin": true`` in its spec (as its operator would restart its node); it
            rejoins the group at the next round boundary.
        secure_transport: provision a throw-away federation for this launch (a kit per party
            in a private temporary directory, deleted at the end; fedtrain/identity) and run
            every byte between the parties, and the rendezvous store, over its authenticated
            TLS channels (fedtrain/transport). False: plain gloo and TCPStore
            (``--insecure-transport``).
    """
    world_size = len(specs)
    name = with_ttp_name(party_name, world_size)
    with contextlib.ExitStack() as stack:
        rendezvous = _Rendezvous(stack, world_size, ttp, timeout_s, secure_transport, on_event)
        return _launch(job, specs, workdir, rendezvous, timeout_s=timeout_s,
                       threads_per_party=threads_per_party, ttp=ttp, env=env, on_event=on_event,
                       party_name=name, tolerate_dropouts=tolerate_dropouts,
                       restart_dropped=restart_dropped)


class _Rendezvous:
    """The rendezvous store of one launch, hosted here rather than in a party so that any party
    may fail without taking the membership records of the others with it (it holds addresses
    and membership, never data); with the secure transport also the launch's federation."""

    def __init__(self, stack: contextlib.ExitStack, parties: int, ttp: bool, timeout_s: float,
                 secure: bool, on_event: EventFn | None) -> None:
        self.secure = secure
        if not secure:
            port = free_port()
            self.url = f"tcp://127.0.0.1:{port}"
            tcp = dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False,
                                timeout=datetime.timedelta(seconds=timeout_s))
            self.set: Callable[[str, str], None] = tcp.set
            self.env = {"CRYPTEN_FL_TRANSPORT": "tcp"}
            return
        from crypten_fl.fedtrain.identity import load_kit, provision_ephemeral
        from crypten_fl.fedtrain.transport.join import credentials_from_kit
        from crypten_fl.fedtrain.transport.store import StoreServer

        kits = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crypten-fl-kits-")))
        self.kits = provision_ephemeral(kits, parties, ttp=ttp)

        def refused(r: Any) -> None:
            if on_event is not None:
                on_event(-1, {"event": "refused", "peer": r.address, "reason": r.reason,
                              "time": time.time()})

        server = StoreServer(credentials_from_kit(load_kit(self.kits / "rendezvous")),
                             "127.0.0.1", 0, refused)
        stack.callback(server.close)
        self.url = f"tcp://127.0.0.1:{server.port}"
        self.set = server.local_set
        self.env = {"CRYPTEN_FL_TRANSPORT": "tls"}

    def kit_env(self, rank: int, parties: int) -> dict[str, str]:
        """The environment that gives party ``rank`` its own kit (and nobody else's)."""
        if not self.secure:
            return {}
        name = "ttp" if rank == parties else f"hospital_{rank}"
        return {"CRYPTEN_FL_KIT": str(self.kits / name)}


def _launch(job: str, specs: list[dict[str, Any]], workdir: Path, rendezvous: _Rendezvous, *,
            timeout_s: float, threads_per_party: int, ttp: bool, env: dict[str, str] | None,
            on_event: EventFn | None, party_name: Callable[[int], str],
            tolerate_dropouts: bool, restart_dropped: bool) -> list[dict[str, Any] | None]:
    world_size = len(specs)
    store_set = rendezvous.set
    extra = dict(env or {})
    extra.setdefault("CRYPTEN_FL_SESSION", os.urandom(8).hex())
    extra.update(CRYPTEN_FL_STORE="external", CRYPTEN_FL_LAUNCHER_PID=str(os.getpid()),
                 **rendezvous.env)
    parties: list[_Party] = []
    common = ["--timeout", str(timeout_s), "--threads", str(threads_per_party)]
    if ttp:
        common.append("--ttp")

    def start(rank: int, spec: dict[str, Any], name: str) -> _Party:
        pdir = _fresh(workdir / name)
        (pdir / "spec.json").write_text(json.dumps(spec, default=str))
        argv = ["--job", job, "--spec", str(pdir / "spec.json"), "--workdir", str(pdir), *common]
        return _spawn(rank, world_size, rendezvous.url,
                      {**extra, **rendezvous.kit_env(rank, world_size)}, pdir, argv)

    for rank, spec in enumerate(specs):
        parties.append(start(rank, spec, f"party_{rank}"))
    if ttp:
        tdir = _fresh(workdir / "ttp")
        argv = ["--workdir", str(tdir), "--ttp-server", *common]
        parties.append(_spawn(world_size, world_size, rendezvous.url,
                              {**extra, **rendezvous.kit_env(world_size, world_size)}, tdir,
                              argv))
    try:
        if tolerate_dropouts:
            restart = None
            if restart_dropped:
                def restart(p: _Party) -> _Party:
                    store_set(f"restarting/{p.rank}", "1")  # the group waits for it
                    return start(p.rank, {**specs[p.rank], "rejoin": True},
                                 f"party_{p.rank}_rejoined")
            _supervise_tolerant(parties, on_event, party_name, restart,
                                on_dead=lambda p: store_set(f"dead/{p.rank}", "1"),
                                silent_s=timeout_s + 10)
        else:
            _supervise(parties, on_event, party_name)
    finally:
        _stop(parties)
    return [json.loads((p.workdir / "result.json").read_text())
            if (p.workdir / "result.json").exists() else None for p in parties[:world_size]]


def with_ttp_name(party_name: Callable[[int], str], world_size: int) -> Callable[[int], str]:
    """``party_name`` for the parties' ranks; the TTP dealer's rank (after them) by its role."""
    def name(rank: int) -> str:
        return party_name(rank) if rank < world_size else "the trusted third party (TTP)"
    return name


def _fresh(pdir: Path) -> Path:
    """An empty work dir for a party (an interrupted earlier launch may have left events)."""
    if pdir.exists():
        shutil.rmtree(pdir)
    pdir.mkdir(parents=True)
    return pdir


def _spawn(rank: int, world_size: int, rendezvous: str, extra: dict[str, str], pdir: Path,
           argv: list[str]) -> _Party:
    process = PartyProcess(argv, _party_env(rank, world_size, rendezvous, extra),
                           pdir / "party.log")
    return _Party(rank, pdir, process)


def _failed(p: _Party) -> bool:
    code = p.process.poll()
    return code is not None and (code != 0 or not _finished(p))


def _error_time(p: _Party) -> float:
    error = p.workdir / "error.json"
    return json.loads(error.read_text()).get("time", 0.0) if error.exists() else float("inf")


def _cause_first(p: _Party) -> tuple[bool, float]:
    """Sort key of failed parties, root cause first: a party killed by a signal (it wrote no
    error) cannot be reacting to a peer, so it comes before any that reported an error; among
    those, the earliest error."""
    code = p.process.poll()
    killed = code is not None and code < 0 and not (p.workdir / "error.json").exists()
    return (not killed, _error_time(p))


def _supervise(parties: list[_Party], on_event: EventFn | None,
               party_name: Callable[[int], str], grace_s: float = 1.5) -> None:
    """Wait for every party; on a failure stop the others and raise PartyFailure.

    Peers of a crashed party fail a moment later ("connection closed"); after a short grace
    period the party whose error came first is named as the cause.
    """
    while True:
        for p in parties:
            _poll_events(p, on_event)
        if any(_failed(p) for p in parties):
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(p.process.poll() is None for p in parties):
                time.sleep(0.1)
            failed = [p for p in parties if _failed(p)]
            _stop(parties)
            for q in parties:
                _poll_events(q, on_event)
            cause = min(failed, key=_cause_first)
            raise _failure(cause, cause.process.poll(), party_name)
        if all(p.process.poll() is not None for p in parties):
            return
        time.sleep(0.1)


def _supervise_tolerant(parties: list[_Party], on_event: EventFn | None,
                        party_name: Callable[[int], str],
                        restart: Callable[[_Party], _Party] | None = None,
                        on_dead: Callable[[_Party], None] | None = None,
                        silent_s: float = 60.0) -> None:
    """Wait for every party; a failed party is reported as dropped while the others go on
    (and, with ``restart``, is started once more to rejoin).

    Once a party has finished, the others get ``silent_s`` seconds to finish too; a party still
    running then (a hung hospital the others left behind) is stopped. Raises PartyFailure
    (naming the earliest failure) only if no party finished.
    """
    dropped: list[_Party] = []  # in the order the failures were noticed
    restarted: set[int] = set()
    first_done: float | None = None
    while True:
        for p in parties:
            _poll_events(p, on_event)
        for i, p in enumerate(parties):
            if p not in dropped and _failed(p):
                dropped.append(p)
                if on_dead is not None:  # the survivors need not wait for it to re-form
                    on_dead(p)
                if on_event is not None:
                    reason = str(_failure(p, p.process.poll(), party_name))
                    on_event(p.rank, {"event": "dropped", "rank": p.rank, "reason": reason,
                                      "time": time.time()})
                alive = any(q.process.poll() is None for q in parties)
                if restart is not None and p.rank not in restarted and alive:
                    restarted.add(p.rank)
                    parties[i] = restart(p)
                    if on_event is not None:
                        on_event(p.rank, {"event": "restarted", "rank": p.rank,
                                          "time": time.time()})
        if all(p.process.poll() is not None for p in parties):
            break
        if first_done is None and any(_finished_ok(p) for p in parties):
            first_done = time.monotonic()
        if first_done is not None and time.monotonic() - first_done > silent_s:
            break  # the group finished without the parties still running: they hang, stop them
        time.sleep(0.1)
    for p in parties:
        if p.process.poll() is None and on_event is not None:
            on_event(p.rank, {"event": "dropped", "rank": p.rank, "time": time.time(),
                              "reason": f"{party_name(p.rank)} stopped answering (still running "
                                        f"{silent_s:.0f} s after the others finished)"})
    if not any((p.workdir / "result.json").exists() for p in parties):
        cause, last = dropped[0], dropped[-1]
        error = _failure(cause, cause.process.poll(), party_name)
        if last is not cause and (last.workdir / "error.json").exists():
            final = json.loads((last.workdir / "error.json").read_text())["message"]
            error = PartyFailure(f"{error}; then {party_name(last.rank)}: {final}",
                                 cause.rank, cause.last_event)
        raise error


def _finished_ok(p: _Party) -> bool:
    return p.process.poll() == 0 and (p.workdir / "result.json").exists()


def _finished(p: _Party) -> bool:
    return (p.workdir / "result.json").exists() or not (p.workdir / "spec.json").exists()


def _failure(p: _Party, code: int | None, party_name: Callable[[int], str]) -> PartyFailure:
    error = p.workdir / "error.json"
    if error.exists():  # the party's own account of its failure, even if its exit then aborted
        reason = json.loads(error.read_text())["message"]
    elif code is not None and code < 0:
        reason = f"killed by signal {-code}"
    else:
        reason = f"exit code {code}"
    last = p.last_event.get("event") if p.last_event else "none"
    log = p.workdir / "party.log"
    message = f"{party_name(p.rank)} failed: {reason} (last event: {last}; log: {log})"
    return PartyFailure(message, p.rank, p.last_event)
