"""Local launcher: one OS process per party, supervised, results collected through files.

Not ``crypten.mpc.run_multiprocess`` (DESIGN.md §7: returning tensors fails, large returns hang, no
timeout). Each party is a fresh ``python -m fedtrain.party`` process that gets only its own spec
file (its own hospital directory); the launcher holds no patient data. If a party crashes, the
others are stopped within seconds and a ``PartyFailure`` names the party and its last event.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimic_etl.errors import UserError

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
    process: subprocess.Popen
    log: Any
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
) -> list[dict[str, Any]]:
    """Run ``job`` in ``len(specs)`` party processes (rank r gets ``specs[r]``); return results.

    Args:
        job: ``module:function`` taking a ``fedtrain.party.PartyContext``, returning JSON data.
        specs: one JSON-serialisable spec per rank; a party sees only its own.
        workdir: parent of the per-party work dirs ``party_<r>/`` (spec, events, result, log).
        timeout_s: collective timeout inside the parties (a stalled peer surfaces after this).
        ttp: also start CrypTen's TTP dealer (rank = number of parties) for Beaver triples.
        on_event: called with (rank, event) for every progress event a party emits.
    """
    world_size = len(specs)
    rendezvous = f"tcp://127.0.0.1:{free_port()}"
    extra = dict(env or {})
    extra.setdefault("CRYPTEN_FL_SESSION", os.urandom(8).hex())
    parties: list[_Party] = []
    common = ["--timeout", str(timeout_s), "--threads", str(threads_per_party)]
    if ttp:
        common.append("--ttp")
    for rank, spec in enumerate(specs):
        pdir = workdir / f"party_{rank}"
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / "spec.json").write_text(json.dumps(spec, default=str))
        argv = ["--job", job, "--spec", str(pdir / "spec.json"), "--workdir", str(pdir), *common]
        parties.append(_spawn(rank, world_size, rendezvous, extra, pdir, argv))
    if ttp:
        tdir = workdir / "ttp"
        tdir.mkdir(parents=True, exist_ok=True)
        argv = ["--workdir", str(tdir), "--ttp-server", *common]
        parties.append(_spawn(world_size, world_size, rendezvous, extra, tdir, argv))
    try:
        _supervise(parties, on_event, party_name)
    finally:
        _stop(parties)
        for p in parties:
            p.log.close()
    return [json.loads((p.workdir / "result.json").read_text()) for p in parties[:world_size]]


def _spawn(rank: int, world_size: int, rendezvous: str, extra: dict[str, str], pdir: Path,
           argv: list[str]) -> _Party:
    log = open(pdir / "party.log", "w")  # noqa: SIM115  (closed by launch)
    process = subprocess.Popen(
        [sys.executable, "-m", "fedtrain.party", *argv],
        env=_party_env(rank, world_size, rendezvous, extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return _Party(rank, pdir, process, log)


def _failed(p: _Party) -> bool:
    code = p.process.poll()
    return code is not None and (code != 0 or not _finished(p))


def _error_time(p: _Party) -> float:
    error = p.workdir / "error.json"
    return json.loads(error.read_text()).get("time", 0.0) if error.exists() else float("inf")


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
            cause = min(failed, key=_error_time)
            raise _failure(cause, cause.process.poll(), party_name)
        if all(p.process.poll() is not None for p in parties):
            return
        time.sleep(0.1)


def _finished(p: _Party) -> bool:
    return (p.workdir / "result.json").exists() or not (p.workdir / "spec.json").exists()


def _failure(p: _Party, code: int | None, party_name: Callable[[int], str]) -> PartyFailure:
    error = p.workdir / "error.json"
    reason = json.loads(error.read_text())["message"] if error.exists() else f"exit code {code}"
    if code is not None and code < 0:
        reason = f"killed by signal {-code}"
    last = p.last_event.get("event") if p.last_event else "none"
    log = p.workdir / "party.log"
    message = f"{party_name(p.rank)} failed: {reason} (last event: {last}; log: {log})"
    return PartyFailure(message, p.rank, p.last_event)
