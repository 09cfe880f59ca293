"""Membership of the secure group, and its re-forming when hospitals drop out.

Every party joins CrypTen through one rendezvous store (hosted by the local launcher, by a
``crypten-fl node --rendezvous-server`` process, or by rank 0; over the federation's TLS channels,
fedtrain/transport/store.py, unless ``--insecure-transport``). The store carries only membership
records and link addresses — never data. Each generation of the group ("epoch" e) gets its own
key prefix ``e<e>/``, so a new torch.distributed world can be formed among the survivors after a
failure without restarting anyone.

Re-forming after a failure (``SecureGroup.reform``): every survivor leaves the broken world and
registers under ``e<e+1>/@hospital_<h>/arrived`` (a key only hospital h may write); the first to
register decides the membership once every previous member has registered or ``window_s`` has
passed, and publishes it. A party that registers after the decision is not in the new group (it
is treated as dropped, and may rejoin at a later round). If fewer than ``min_members`` remain,
everyone stops with ``GroupTooSmall``; the last completed round's checkpoints stay intact. A
hospital is identified by its original rank (``me``); its CrypTen rank in epoch e is its index in
the sorted member list, and the secure transport accepts that rank only from that hospital.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import torch
import torch.distributed as dist
from crypten_fl.fedtrain import compat
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.transport import join as transport
from crypten_fl.fedtrain.transport import process_group


class GroupError(Exception):
    """The secure group cannot go on (deliberately not a RuntimeError, which means a peer
    failure to the aggregator)."""


class GroupTooSmall(GroupError):
    """Fewer than ``--min-hospitals`` hospitals remain: the run stops cleanly."""


class ExcludedFromGroup(GroupError):
    """This party arrived after the survivors had re-formed without it."""


def connect_store(rendezvous: str, rank: int, timeout_s: float, host_it: bool) -> dist.Store:
    """Client (or, with ``host_it``, server) of the rendezvous store at ``tcp://HOST:PORT``:
    over the federation's TLS channels (fedtrain/transport/store.py), or a plaintext TCPStore
    with ``--insecure-transport``."""
    if transport.secure():
        return transport.connect_store(rendezvous, timeout_s, host_it)
    url = urlparse(rendezvous)
    if url.scheme != "tcp" or url.hostname is None or url.port is None:
        raise ValueError(f"rendezvous {rendezvous!r}: expected tcp://HOST:PORT")
    return dist.TCPStore(url.hostname, url.port, is_master=host_it,
                         timeout=datetime.timedelta(seconds=timeout_s), wait_for_workers=False)


def arrived_key(prefix: str, hospital: int) -> str:
    """Where a survivor registers for the next epoch: a key only that hospital may write."""
    return f"{prefix}@hospital_{hospital}/arrived"


def join_key(hospital: int) -> str:
    """A dropped-out hospital's request to rejoin: a key only that hospital may write."""
    return f"@hospital_{hospital}/join"


def world_store(store: dist.Store, epoch: int) -> dist.Store:
    """The view of the rendezvous store that the torch.distributed world of ``epoch`` uses."""
    return dist.PrefixStore(f"e{epoch}/pg/", store)


@dataclass
class CommTotals:
    """CrypTen's communication counters summed over the group's epochs."""

    bytes: int = 0
    rounds: int = 0


@dataclass
class SecureGroup:
    """The current generation of the secure group, seen from one hospital.

    Args:
        store: the rendezvous store (see :func:`connect_store`).
        me: this hospital's stable identity (its rank in the first epoch).
        members: identities of the current members.
        min_members: fewest members with which rounds may continue (``--min-hospitals``).
        window_s: how long the first survivor waits for the others to register (default 5 s,
            or CRYPTEN_FL_REFORM_WINDOW_S).
        timeout_s: how long anyone waits for a decision or a peer.
    """

    store: dist.Store
    me: int
    members: list[int]
    min_members: int
    window_s: float = float(os.environ.get("CRYPTEN_FL_REFORM_WINDOW_S", "5"))
    timeout_s: float = 60.0
    epoch: int = 0
    ttp: bool = False
    past: CommTotals = field(default_factory=CommTotals)
    history: list[dict[str, object]] = field(default_factory=list)

    hospitals: int = field(init=False)  # every hospital of the run, present or not

    def __post_init__(self) -> None:
        self.hospitals = len(self.members)

    @property
    def tolerant(self) -> bool:
        """Whether the group may continue without some of its hospitals (and let them rejoin)."""
        return self.min_members < self.hospitals

    @property
    def rank(self) -> int:
        return self.members.index(self.me)

    def join(self) -> None:
        """Join CrypTen's world for the current epoch (also the first time)."""
        os.environ.update(RANK=str(self.rank), WORLD_SIZE=str(len(self.members)))
        if transport.secure():  # who may hold which rank of this epoch's world
            process_group.set_roster(transport.roster(len(self.members), self.ttp, self.members))
        compat.set_group_store(world_store(self.store, self.epoch))
        crypten.init()

    def comm_totals(self) -> CommTotals:
        """Bytes and rounds CrypTen counted for this party, over every epoch so far."""
        stats = crypten.communicator.get().get_communication_stats()
        return CommTotals(self.past.bytes + int(stats["bytes"]),
                          self.past.rounds + int(stats["rounds"]))

    def leave(self) -> None:
        """Leave the current (possibly broken) world."""
        with contextlib.suppress(Exception):
            self.past = self.comm_totals()
        with contextlib.suppress(Exception):
            crypten.uninit()
        crypten.communicator.DistributedCommunicator.instance = None
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        if transport.secure():
            process_group.close_world()
        gc.collect()  # free the old groups now: closing their sockets wakes peers still waiting

    def reform(self, reason: str) -> None:
        """Form the next epoch with every member that is still alive (see module docstring)."""
        began = time.monotonic()
        self.leave()
        nxt = self.epoch + 1
        prefix = f"e{nxt}/"
        self.store.set(arrived_key(prefix, self.me), "1")
        if self.store.add(f"{prefix}arrivals", 1) == 1:
            self.store.set(f"{prefix}members", json.dumps(self._await_survivors(prefix)))
        self.store.wait([f"{prefix}members"], datetime.timedelta(seconds=self.timeout_s))
        members = json.loads(self.store.get(f"{prefix}members"))
        dropped = sorted(set(self.members) - set(members))
        self.history.append({"epoch": nxt, "members": members, "dropped": dropped,
                             "reason": reason[:200], "seconds": time.monotonic() - began})
        if self.me not in members:
            raise ExcludedFromGroup(f"hospital {self.me} arrived after the group re-formed")
        if len(members) < self.min_members:
            raise GroupTooSmall(f"only {len(members)} hospitals remain (hospitals "
                                f"{', '.join(map(str, dropped))} dropped out); "
                                f"--min-hospitals is {self.min_members}")
        self.epoch, self.members = nxt, members
        self.join()

    def admit(self, agree: Callable[[torch.Tensor], torch.Tensor]) -> list[int]:
        """At a round boundary: take in every absent hospital that asked to rejoin.

        The lowest member reads the join requests from the store; ``agree`` (a secure sum)
        gives every member the same decision. Joiners and members then form the next epoch.
        Returns the hospitals admitted (none: nothing changes, nothing is re-formed).
        """
        absent = [h for h in range(self.hospitals) if h not in self.members]
        if not absent:
            return []
        asks = torch.zeros(len(absent), dtype=torch.float64)
        if self.rank == 0:
            self._await_restarting(absent)
            asks = torch.tensor([float(self.store.check([join_key(h)])) for h in absent],
                                dtype=torch.float64)
        joiners = [h for h, n in zip(absent, agree(asks).tolist(), strict=True) if n > 0.5]
        if not joiners:
            return []
        nxt, members = self.epoch + 1, sorted(self.members + joiners)
        if self.rank == 0:
            self.store.set(f"e{nxt}/members", json.dumps(members))
            for h in joiners:  # the joiner withdraws its own request (a key only it may write)
                self.store.delete_key(f"restarting/{h}")
                self.store.delete_key(f"dead/{h}")
                self.store.set(f"join/{h}/epoch", str(nxt))
        self.leave()
        self.history.append({"epoch": nxt, "members": members, "dropped": [],
                             "rejoined": joiners, "reason": "rejoin", "seconds": 0.0})
        self.epoch, self.members = nxt, members
        self.join()
        return joiners

    def _await_restarting(self, absent: list[int]) -> None:
        """Wait (up to half the timeout) for the join request of a hospital whose restart was
        announced under ``restarting/<h>`` (the local launcher does; see launch.py)."""
        for h in absent:
            if self.store.check([f"restarting/{h}"]):
                with contextlib.suppress(Exception):  # not there in time: admitted later
                    self.store.wait([join_key(h)],
                                    datetime.timedelta(seconds=self.timeout_s / 2))

    def request_rejoin(self) -> None:
        """Ask the running group to take this hospital back; join when admitted."""
        key = f"join/{self.me}/epoch"
        self.store.delete_key(key)  # an admission of an earlier rejoin is not this one's
        self.store.set(join_key(self.me), "1")
        deadline = time.monotonic() + self.timeout_s * 10
        while not self.store.check([key]):
            if self.store.check(["finished"]):
                raise GroupError(f"hospital {self.me}: the run finished before it could rejoin")
            if time.monotonic() > deadline:
                raise GroupError(f"hospital {self.me}: not readmitted within "
                                 f"{self.timeout_s * 10:.0f} s")
            time.sleep(0.2)
        self.epoch = int(self.store.get(key))
        self.store.delete_key(join_key(self.me))  # admitted: the request is answered
        self.members = json.loads(self.store.get(f"e{self.epoch}/members"))
        self.history.append({"epoch": self.epoch, "members": self.members, "dropped": [],
                             "rejoined": [self.me], "reason": "rejoin", "seconds": 0.0})
        self.join()

    def finish(self) -> None:
        """Tell hospitals still waiting to rejoin that the run is over."""
        self.store.set("finished", "1")

    def _await_survivors(self, prefix: str) -> list[int]:
        """Members that registered within the window; it closes early once every member not
        known to be dead (``dead/<h>``, written by the local launcher when it sees a party
        exit) has registered."""
        deadline = time.monotonic() + self.window_s
        while True:
            arrived = [m for m in self.members if self.store.check([arrived_key(prefix, m)])]
            alive = [m for m in self.members if not self.store.check([f"dead/{m}"])]
            if set(alive) <= set(arrived) or time.monotonic() >= deadline:
                return arrived
            time.sleep(0.05)


_current: SecureGroup | None = None


def install(group: SecureGroup) -> None:
    """Make ``group`` this process's secure group (one per party process, like CrypTen's)."""
    global _current
    _current = group


def current() -> SecureGroup | None:
    """This process's secure group (None when CrypTen was joined without one)."""
    return _current
