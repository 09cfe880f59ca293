"""``cfltls``: a torch.distributed backend whose every byte goes over the federation's TLS links.

CrypTen (and the project's own secure sum) call ``torch.distributed`` as usual; with
``DISTRIBUTED_BACKEND=cfltls`` the calls land here. The default (world) group opens one outgoing
link to every other member (:mod:`~fedtrain.transport.mesh`) and accepts one from each; groups
created later (CrypTen makes three) share the world's links, their messages told apart by a group
id in each header. Collectives run in the caller's thread (:mod:`~fedtrain.transport.
collectives`); receives are completed by the links' reader threads.

Who is who: :func:`configure` gives the roster (member name of every global rank of the next
world). A link is accepted only from the member the roster names for the rank the peer claims.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from crypten_fl.fedtrain.transport import collectives
from crypten_fl.fedtrain.transport.channels import Credentials, PeerRefused
from crypten_fl.fedtrain.transport.links import (
    COLLECTIVE,
    P2P,
    InLink,
    LinkError,
    OutLink,
    as_bytes,
)
from crypten_fl.fedtrain.transport.mesh import Listener, RefusedFn, dial
from torch.futures import Future

BACKEND = "cfltls"


@dataclass
class Settings:
    """How this process joins worlds: its credentials, the roster, where it listens."""

    credentials: Credentials
    roster: list[str]
    listen_host: str = "127.0.0.1"
    advertise: str | None = None
    port: int = 0
    on_refused: RefusedFn | None = None


_settings: Settings | None = None
_listener: Listener | None = None
_world: World | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> None:
    """Register the backend (once) and set how the next worlds are formed."""
    global _settings
    if BACKEND not in dist.Backend.backend_list:
        dist.Backend.register_backend(BACKEND, _create, extended_api=True, devices=["cpu"])
    _settings = settings


def set_roster(roster: list[str]) -> None:
    """Member names of the global ranks of the next world (e.g. after the group re-formed)."""
    if _settings is None:
        raise RuntimeError("transport not configured")
    _settings.roster = list(roster)


def listener() -> Listener:
    """This process's listener (started on first use, kept for every later world)."""
    global _listener
    assert _settings is not None
    with _lock:
        if _listener is None:
            _listener = Listener(_settings.credentials, _settings.listen_host, _settings.port,
                                 _settings.advertise, _settings.on_refused)
        return _listener


def close_world() -> None:
    """Close the links of the current world (when leaving it; a new world opens new ones)."""
    global _world
    if _world is not None:
        _world.close()
        _world = None


def connect_seconds() -> float:
    """How long this member took to open and accept the current world's links."""
    return _world.connect_s if _world is not None else 0.0


def traffic() -> tuple[int, int]:
    """Bytes this process has sent and received on the current world's links."""
    if _world is None:
        return 0, 0
    return _world.bytes_sent(), _world.bytes_received()


class World:
    """This process's links to every other member of one torch.distributed world."""

    def __init__(self, rank: int, names: list[str], timeout_s: float) -> None:
        self.rank, self.names, self.timeout_s = rank, names, timeout_s
        self.outs: dict[int, OutLink] = {}
        self.ins: dict[int, InLink] = {}
        self._cond = threading.Condition()
        self._nonce = secrets.token_hex(16)
        self.connect_s = 0.0

    def connect(self, store: dist.Store, settings: Settings) -> None:
        """Publish this member's address, dial every peer, wait for every peer to dial back."""
        began = time.monotonic()
        deadline = began + self.timeout_s
        own = listener()
        own.register(self._nonce, self.names.__getitem__, self._attach)
        me = self.names[self.rank]
        store.set(f"@{me}/link", json.dumps({"host": own.host, "port": own.port,
                                             "nonce": self._nonce}))
        peers = [r for r in range(len(self.names)) if r != self.rank]
        hello = {"federation": settings.credentials.federation_id, "rank": self.rank}

        def open_link(peer: int) -> OutLink:
            info = json.loads(store.get(f"@{self.names[peer]}/link"))
            return dial(settings.credentials, info["host"], int(info["port"]), self.names[peer],
                        {**hello, "nonce": info["nonce"]}, deadline, self.timeout_s)

        try:
            with ThreadPoolExecutor(max_workers=min(8, max(1, len(peers)))) as pool:
                for peer, link in zip(peers, pool.map(open_link, peers), strict=True):
                    self.outs[peer] = link
            self._await_incoming(peers, deadline)
            self.connect_s = time.monotonic() - began
        except BaseException:
            self.close()
            raise

    def _attach(self, rank: int, link: InLink) -> None:
        with self._cond:
            old = self.ins.get(rank)
            self.ins[rank] = link
            self._cond.notify_all()
        if old is not None:  # a second link claiming the same member: keep the newest
            old.close()

    def _await_incoming(self, peers: list[int], deadline: float) -> None:
        with self._cond:
            while not all(p in self.ins for p in peers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = [self.names[p] for p in peers if p not in self.ins]
                    raise LinkError(f"timed out after {self.timeout_s:.0f} s waiting for "
                                    f"{', '.join(missing)} to connect")
                self._cond.wait(remaining)

    def close(self) -> None:
        if _listener is not None:
            _listener.unregister(self._nonce)
        for link in [*self.outs.values(), *self.ins.values()]:
            link.close()

    def bytes_sent(self) -> int:
        return sum(link.sent for link in self.outs.values())

    def bytes_received(self) -> int:
        return sum(link.received for link in self.ins.values())


class FutureWork(dist.Work):
    """A Work backed by a future whose ``wait`` raises the future's error.

    (torch's ``_create_work_from_future`` makes a Work whose ``wait()`` returns silently when
    the future failed — measured: a timed-out receive then looks like a completed one.)
    """

    def __init__(self, future: Future) -> None:
        super().__init__()
        self._future = future

    def wait(self, timeout: Any = None) -> bool:
        self._future.wait()  # raises the error the future completed with
        return True

    def is_completed(self) -> bool:
        return self._future.done()

    def is_success(self) -> bool:
        if not self._future.done():
            return False
        try:
            self._future.value()
        except Exception:
            return False
        return True

    def exception(self) -> Any:
        try:
            self._future.value()
        except Exception as err:
            return err
        return None

    def get_future(self) -> Future:
        return self._future

    def result(self) -> Any:
        return self._future.value()


def _done(result: Any) -> FutureWork:
    future: Future = Future()
    future.set_result(result)
    return FutureWork(future)


class TlsProcessGroup(dist.ProcessGroup):
    """One process group over the links of ``world`` (group rank r = global rank ranks[r])."""

    def __init__(self, world: World, group_id: int, ranks: list[int], rank: int,
                 timeout_s: float) -> None:
        super().__init__(rank, len(ranks))
        self.world, self.group_id, self.ranks = world, group_id, ranks
        self.timeout_s = timeout_s
        self._seq = 0
        self.rank_in_group, self.size_in_group = rank, len(ranks)

    # torch asks the group for its name (e.g. in destroy_process_group); a Python group has no
    # C++ backend to answer, so it keeps the name torch gives it
    _name = ""
    _desc = ""

    @property
    def group_name(self) -> str:  # type: ignore[override]
        return self._name

    def _set_group_name(self, name: str) -> None:
        self._name = name

    @property
    def group_desc(self) -> str:  # type: ignore[override]
        return self._desc

    def _set_group_desc(self, desc: str) -> None:
        self._desc = desc

    def getBackendName(self) -> str:  # torch calls it by this name
        return BACKEND

    def _run(self, fn: Callable[..., None], *args: Any) -> None:
        """Run one collective of collectives.py as the next in this group's sequence."""
        self._seq += 1
        fn(_GroupWire(self, time.monotonic() + self.timeout_s), self._seq, *args)

    # -- collectives ---------------------------------------------------------------------------
    def allreduce(self, tensors: list[torch.Tensor], opts: Any) -> Any:
        for t in tensors:
            self._run(collectives.all_reduce, t, opts.reduceOp)
        return _done(tensors)

    def allreduce_coalesced(self, tensors: list[torch.Tensor], opts: Any) -> Any:
        return self.allreduce(tensors, opts)

    def broadcast(self, tensors: list[torch.Tensor], opts: Any) -> Any:
        for t in tensors:
            self._run(collectives.broadcast, t, opts.rootRank)
        return _done(tensors)

    def reduce(self, tensors: list[torch.Tensor], opts: Any) -> Any:
        for t in tensors:
            self._run(collectives.reduce, t, opts.rootRank, opts.reduceOp)
        return _done(tensors)

    def allgather(self, outputs: list[list[torch.Tensor]], inputs: list[torch.Tensor],
                  opts: Any) -> Any:
        for outs, t in zip(outputs, inputs, strict=True):
            self._run(collectives.all_gather, outs, t)
        return _done(outputs)

    def _allgather_base(self, output: torch.Tensor, input: torch.Tensor, opts: Any) -> Any:
        self._run(collectives.all_gather, list(output.chunk(self.size_in_group)), input)
        return _done([output])

    def gather(self, outputs: list[list[torch.Tensor]], inputs: list[torch.Tensor],
               opts: Any) -> Any:
        outs = outputs[0] if outputs else None
        self._run(collectives.gather, outs, inputs[0], opts.rootRank)
        return _done(outputs)

    def scatter(self, outputs: list[torch.Tensor], inputs: list[list[torch.Tensor]],
                opts: Any) -> Any:
        ins = inputs[0] if inputs else None
        self._run(collectives.scatter, outputs[0], ins, opts.rootRank)
        return _done(outputs)

    def barrier(self, opts: Any = None) -> Any:
        self._run(collectives.barrier)
        return _done([])

    # -- point to point ------------------------------------------------------------------------
    def send(self, tensors: list[torch.Tensor], dst: int, tag: int) -> Any:
        out = self.world.outs[self.ranks[dst]]
        for t in tensors:
            out.send(P2P, self.group_id, tag, as_bytes(t))
        return _done(tensors)

    def recv(self, tensors: list[torch.Tensor], src: int, tag: int) -> Any:
        link = self.world.ins[self.ranks[src]]
        deadline = time.monotonic() + self.timeout_s
        futures = [link.post_recv(self.group_id, tag, t, deadline) for t in tensors]
        return FutureWork(futures[-1] if len(futures) == 1 else _all(futures))


def _all(futures: list[Future]) -> Future:
    """A future completed when all are, failing with the first error."""
    combined: Future = Future()
    lock = threading.Lock()

    def check(_: Future) -> None:
        with lock:
            if combined.done() or not all(f.done() for f in futures):
                return
            for f in futures:
                try:
                    f.value()
                except Exception as err:
                    combined.set_exception(err)
                    return
            combined.set_result([v for f in futures for v in f.value()])

    for f in futures:
        f.add_done_callback(check)
    return combined


@dataclass
class _GroupWire:
    """The Wire (collectives.py) of one collective call: group ranks, the world's links."""

    group: TlsProcessGroup
    deadline: float

    @property
    def rank(self) -> int:
        return self.group.rank_in_group

    @property
    def size(self) -> int:
        return self.group.size_in_group

    def send(self, peer: int, seq: int, payload: memoryview) -> None:
        g = self.group
        g.world.outs[g.ranks[peer]].send(COLLECTIVE, g.group_id, seq, payload)

    def take(self, peer: int, seq: int) -> torch.Tensor:
        g = self.group
        return g.world.ins[g.ranks[peer]].take(g.group_id, seq, self.deadline)


def _create(opts: Any, backend_options: Any) -> TlsProcessGroup:
    """torch.distributed's creator hook: the world group connects, later groups share it."""
    global _world
    if _settings is None:
        raise RuntimeError("cfltls backend used before fedtrain.transport.configure()")
    timeout_s = opts.timeout.total_seconds()
    rank, size = int(opts.group_rank), int(opts.group_size)
    ranks = list(opts.global_ranks_in_group) or list(range(size))
    if not opts.global_ranks_in_group:  # the default group: a new world
        close_world()
        if len(_settings.roster) != size:
            raise RuntimeError(f"roster names {len(_settings.roster)} members, world has {size}")
        world = World(rank, list(_settings.roster), timeout_s)
        try:
            world.connect(opts.store, _settings)
        except PeerRefused as refused:
            if _settings.on_refused is not None:
                _settings.on_refused(refused)
            raise LinkError(f"cannot form the secure world: {refused}") from None
        _world = world
        return TlsProcessGroup(world, 0, ranks, rank, timeout_s)
    if _world is None:
        raise RuntimeError("cfltls: a sub-group before the world group")
    group_id = zlib.crc32(str(opts.group_id).encode()) | 1
    return TlsProcessGroup(_world, group_id, ranks, rank, timeout_s)


def shutdown() -> None:
    """Close the world and the listener (end of the process)."""
    global _listener
    close_world()
    with contextlib.suppress(Exception):
        if _listener is not None:
            _listener.close()
    _listener = None
