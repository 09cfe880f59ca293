"""Private set intersection for vertical federation: semi-honest Diffie–Hellman PSI over X25519.

Every party holds pseudonymous record keys; ``align`` gives each party the row indices of its own
table that lie in the intersection of all parties' keys, in one order agreed by all, and nothing
else (see docs/psi.md for what each party learns). Protocol (Meadows 1986; Huberman, Franklin &
Hogg 1999), run by the label party L with every other party j, all messages shuffled:

1. j → L: H(y)^b for j's keys y;  L → j: H(x)^a for L's keys x (fresh secrets a, b per pair).
2. j → L: (H(x)^a)^b, in L's order. L raises j's values to a: H(y)^ba = H(x)^ab iff x = y.
3. L intersects over all j, draws a random order of the common rows and sends each j, in that
   order, the positions of the matching values in j's own message; j maps them to its rows.

H hashes a key (SHA-256, domain-separated, try-and-increment) to the u-coordinate of a point on
Curve25519 of large order; X25519 scalar multiplication commutes, so H(x)^ab = H(x)^ba.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from crypten_fl.common.errors import UserError
from crypten_fl.common.progress import ProgressFn, no_progress
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

P = 2**255 - 19
A = 486662
POINT_BYTES = 32
DOMAIN = b"crypten-fl psi v1 key-to-curve25519\x00"
#: u-coordinates of the non-neutral points of order dividing 8 on Curve25519 (its 8-torsion):
#: X25519 maps them to the all-zero output, which ``cryptography`` refuses with ValueError.
LOW_ORDER_U = frozenset({
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
})


class ProtocolError(RuntimeError):
    """A peer's message does not fit the protocol (wrong size, invalid point, bad positions)."""


@dataclass
class AlignmentResult:
    """This party's outcome of ``align``.

    Attributes:
        rows: indices into this party's ``keys``, in the order agreed by all parties (int64).
        size: number of common records (``len(rows)``, the same at every party).
        bytes_sent: payload bytes this party sent (the transport adds at most 15 per message).
    """

    rows: np.ndarray
    size: int
    bytes_sent: int


# --- the group: hashing to Curve25519 and blinding ------------------------------------------


def jacobi(a: int, n: int = P) -> int:
    """Jacobi symbol (a/n) for odd n > 0: for prime n, 1 iff a is a non-zero square mod n."""
    a %= n
    result = 1
    while a:
        zeros = (a & -a).bit_length() - 1
        a >>= zeros
        if zeros & 1 and n & 7 in (3, 5):
            result = -result
        if a & n & 3 == 3:
            result = -result
        a, n = n % a, a
    return result if n == 1 else 0


def on_curve(u: int) -> bool:
    """Whether u is the u-coordinate of a point of Curve25519 (v² = u³ + Au² + u), not its twist."""
    return jacobi(u * (u * u + A * u + 1)) == 1


def first_valid_point(candidates: Iterable[int]) -> int:
    """The first candidate that is on the curve (not the twist) and not of low order."""
    for u in candidates:
        if u not in LOW_ORDER_U and on_curve(u):
            return u
    raise ProtocolError("no candidate hashes to a valid curve point")  # probability ~2^-256


def _hash_candidates(key: str) -> Iterable[int]:
    data = key.encode()
    for counter in range(256):
        digest = hashlib.sha256(DOMAIN + bytes([counter]) + data).digest()
        yield (int.from_bytes(digest, "little") & (2**255 - 1)) % P


def hash_to_curve(key: str) -> bytes:
    """H(key): 32-byte canonical u-coordinate of a curve point of large order (about 2 SHA-256s).

    The curve, not the twist: a receiver could otherwise read one bit of H(x) (curve or twist is
    preserved by blinding) off every blinded value.
    """
    return first_valid_point(_hash_candidates(key)).to_bytes(POINT_BYTES, "little")


def new_secret() -> bytes:
    """A fresh 32-byte X25519 scalar (clamped by X25519 itself)."""
    return os.urandom(32)


def blind(secret: bytes, points: Iterable[bytes]) -> list[bytes]:
    """Each u-coordinate raised to ``secret`` (X25519 scalar multiplication).

    Raises:
        ProtocolError: a point of low order. Our own hashes never are (``hash_to_curve`` skips
            them, and a multiple of a large-order point has large order), so only a peer that
            deviates from the protocol can cause it.
    """
    private = X25519PrivateKey.from_private_bytes(secret)
    try:
        return [private.exchange(X25519PublicKey.from_public_bytes(u)) for u in points]
    except ValueError as err:
        raise ProtocolError(f"PSI: received an invalid (low-order) point: {err}") from err


def random_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) from OS randomness (int64)."""
    return np.argsort(np.frombuffer(os.urandom(8 * n), dtype=np.uint64), kind="stable")


def _pack(points: Sequence[bytes]) -> bytes:
    return b"".join(points)


def _unpack(payload: bytes, what: str) -> list[bytes]:
    if len(payload) % POINT_BYTES:
        raise ProtocolError(f"PSI: {what} is {len(payload)} bytes, not a multiple of 32")
    return [payload[i:i + POINT_BYTES] for i in range(0, len(payload), POINT_BYTES)]


# --- transport --------------------------------------------------------------------------------


class Channel(Protocol):
    """Reliable, ordered point-to-point byte messages between the parties of one federation."""

    def send(self, peer: int, payload: bytes) -> None: ...

    def recv(self, peer: int) -> bytes: ...


class CryptenChannel:
    """A Channel over CrypTen's communicator (torch.distributed send/recv on its main group).

    A message is its length (one int64) followed by the payload zero-padded to int64 words, so
    CrypTen's communication statistics (8 bytes per element, sent and received) count exactly the
    bytes on the wire. A send may block until the peer receives. Use after ``crypten.init()``.
    """

    def __init__(self, communicator: Any = None) -> None:
        import torch
        from crypten_fl.fedtrain.compat import crypten

        self._torch = torch
        self._comm = communicator if communicator is not None else crypten.communicator.get()

    def send(self, peer: int, payload: bytes) -> None:
        """Send ``payload`` to rank ``peer``."""
        torch = self._torch
        self._comm.send(torch.tensor([len(payload)], dtype=torch.int64), peer)
        if payload:
            padded = bytearray(payload) + bytes(-len(payload) % 8)
            self._comm.send(torch.frombuffer(padded, dtype=torch.int64), peer)

    def recv(self, peer: int) -> bytes:
        """The next message from rank ``peer``."""
        torch = self._torch
        size = int(self._comm.recv(torch.zeros(1, dtype=torch.int64), peer).item())
        if size == 0:
            return b""
        words = self._comm.recv(torch.zeros((size + 7) // 8, dtype=torch.int64), peer)
        return words.numpy().tobytes()[:size]


class ChannelClosed(RuntimeError):
    """The LocalHub was closed while this party was communicating."""


class LocalHub:
    """In-process channels between threads; a send blocks until received, like a real transport.

    ``close()`` makes every pending and later send/recv raise ``ChannelClosed`` (used to stop the
    other parties when one fails). Waits longer than ``timeout_s`` raise ``TimeoutError``.
    """

    def __init__(self, world_size: int, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.closed = threading.Event()
        self._queues = {(s, d): queue.Queue() for s in range(world_size)
                        for d in range(world_size) if s != d}

    def messages(self, src: int, dst: int) -> queue.Queue:
        """Messages in flight from ``src`` to ``dst``: (payload, taken event) pairs."""
        return self._queues[(src, dst)]

    def channel(self, rank: int) -> LocalChannel:
        """The channel endpoint of party ``rank``."""
        return LocalChannel(self, rank)

    def close(self) -> None:
        """Abort all communication."""
        self.closed.set()

    def wait(self, what: str, ready: Callable[[float], Any]) -> Any:
        """Poll ``ready(timeout)`` until it succeeds, the hub closes or the timeout passes."""
        for _ in range(int(self.timeout_s / 0.05) + 1):
            if self.closed.is_set():
                raise ChannelClosed(f"channel closed during {what}")
            try:
                return ready(0.05)
            except (queue.Empty, TimeoutError):
                continue
        raise TimeoutError(f"{what}: no peer after {self.timeout_s:g} s")


class LocalChannel:
    """Party ``rank``'s endpoint of a LocalHub."""

    def __init__(self, hub: LocalHub, rank: int) -> None:
        self.hub, self.rank = hub, rank

    def send(self, peer: int, payload: bytes) -> None:
        """Hand ``payload`` to ``peer``; return once it has taken it."""
        taken = threading.Event()
        self.hub.messages(self.rank, peer).put((bytes(payload), taken))

        def wait_taken(timeout: float) -> None:
            if not taken.wait(timeout):
                raise TimeoutError

        self.hub.wait(f"send {self.rank}->{peer}", wait_taken)

    def recv(self, peer: int) -> bytes:
        """The next message from ``peer``."""
        q = self.hub.messages(peer, self.rank)
        payload, taken = self.hub.wait(f"recv {self.rank}<-{peer}", lambda t: q.get(timeout=t))
        taken.set()
        return payload


class _Counting:
    """Wraps a Channel and counts the payload bytes sent."""

    def __init__(self, inner: Channel) -> None:
        self.inner, self.sent = inner, 0

    def send(self, peer: int, payload: bytes) -> None:
        self.sent += len(payload)
        self.inner.send(peer, payload)

    def recv(self, peer: int) -> bytes:
        return self.inner.recv(peer)


# --- the protocol -----------------------------------------------------------------------------


def _check_keys(keys: Sequence[str], rank: int) -> list[str]:
    keys = list(keys)
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise UserError(f"PSI: party {rank}'s key at row {i} is {type(key).__name__}, not str")
        if key in first:
            raise UserError(f"PSI: party {rank}'s keys have a duplicate (rows {first[key]} and "
                            f"{i}); every record needs a unique key")
        first[key] = i
    return keys


def _label_party(hashed: list[bytes], peers: list[int], channel: Channel,
                 progress: ProgressFn) -> np.ndarray:
    """Label party: PSI with every peer, intersect, fix the order, tell each peer its rows."""
    n = len(hashed)
    pairs = []
    for peer in peers:
        secret, perm = new_secret(), random_permutation(n)  # perm: message position -> my row
        channel.send(peer, _pack(blind(secret, [hashed[i] for i in perm])))
        pairs.append((peer, secret, perm))
    positions = []  # per peer: for each of my rows, the position in the peer's message, or -1
    for done, (peer, secret, perm) in enumerate(pairs, start=1):
        theirs = _unpack(channel.recv(peer), f"party {peer}'s blinded keys")
        mine_twice = _unpack(channel.recv(peer), f"party {peer}'s re-blinded keys")
        if len(mine_twice) != n:
            raise ProtocolError(f"PSI: party {peer} re-blinded {len(mine_twice)} of {n} values")
        where = {value: k for k, value in enumerate(blind(secret, theirs))}
        pos = np.full(n, -1, dtype=np.int64)
        pos[perm] = [where.get(value, -1) for value in mine_twice]
        positions.append(pos)
        progress("private set intersection", done, len(peers))
    common = np.flatnonzero(np.logical_and.reduce([pos >= 0 for pos in positions]))
    order = common[random_permutation(len(common))]
    for peer, pos in zip(peers, positions, strict=True):
        channel.send(peer, pos[order].astype("<u4").tobytes())
    return order


def _member(hashed: list[bytes], label: int, channel: Channel) -> np.ndarray:
    """Non-label party: one PSI with the label party, then its rows in the agreed order."""
    m = len(hashed)
    secret, perm = new_secret(), random_permutation(m)
    mine = _pack(blind(secret, [hashed[i] for i in perm]))
    theirs = _unpack(channel.recv(label), f"party {label}'s blinded keys")
    reblinded = _pack(blind(secret, theirs))
    channel.send(label, mine)
    channel.send(label, reblinded)
    payload = channel.recv(label)
    if len(payload) % 4:
        raise ProtocolError(f"PSI: party {label}'s order message is {len(payload)} bytes")
    positions = np.frombuffer(payload, dtype="<u4").astype(np.int64)
    if positions.size and (positions.max() >= m or np.unique(positions).size != positions.size):
        raise ProtocolError(f"PSI: party {label} sent invalid or repeated positions")
    return perm[positions]


def align(keys: Sequence[str], rank: int, world_size: int, channel: Channel,
          label_party: int = 0, progress: ProgressFn = no_progress) -> AlignmentResult:
    """Agree with all other parties on the common keys and one order of them.

    Every party calls this at the same time with its own keys. Each learns the number of common
    records and which of its own rows they are; the label party also learns, per other party,
    which of its rows that party holds; every party learns the size of the label party's key
    list and the label party the sizes of the others'. Nothing else (semi-honest parties).

    Args:
        keys: this party's record keys, one per row, unique.
        rank: this party's rank in ``0..world_size-1``.
        world_size: number of parties.
        channel: messages to the other parties (``CryptenChannel`` inside a party process).
        label_party: the rank that runs a PSI with every other party and fixes the order.
        progress: called with ("private set intersection", done, total) as pairwise PSIs end.

    Returns:
        ``AlignmentResult``: ``keys[i] for i in rows`` is the same list at every party.

    Raises:
        UserError: a duplicate or non-string key (raised before anything is sent).
        ProtocolError: a malformed message from a peer.

    >>> first, second = align_local([["a", "b", "c"], ["c", "x", "a"]])
    >>> first.size, sorted(first.rows.tolist()), sorted(second.rows.tolist())
    (2, [0, 2], [0, 2])
    """
    if not (0 <= rank < world_size and 0 <= label_party < world_size):
        raise UserError(f"PSI: rank {rank} / label party {label_party} not in 0..{world_size - 1}")
    keys = _check_keys(keys, rank)
    counting = _Counting(channel)
    hashed = [hash_to_curve(key) for key in keys]
    if world_size == 1:
        rows = np.arange(len(keys), dtype=np.int64)
    elif rank == label_party:
        peers = [p for p in range(world_size) if p != label_party]
        rows = _label_party(hashed, peers, counting, progress)
    else:
        rows = _member(hashed, label_party, counting)
        progress("private set intersection", 1, 1)
    return AlignmentResult(rows=rows.astype(np.int64), size=int(rows.size),
                           bytes_sent=counting.sent)


def align_local(key_lists: Sequence[Sequence[str]], label_party: int = 0,
                timeout_s: float = 60.0, channel_wrapper: Callable[[int, Channel], Channel]
                | None = None) -> list[AlignmentResult]:
    """Run ``align`` for every key list in its own thread over a LocalHub (tests, benchmarks).

    ``channel_wrapper(rank, channel)`` may wrap each party's channel (e.g. to record messages).
    If a party fails, the others are stopped and its exception is re-raised.
    """
    world = len(key_lists)
    hub = LocalHub(world, timeout_s)

    def party(rank: int) -> AlignmentResult:
        channel: Channel = hub.channel(rank)
        if channel_wrapper is not None:
            channel = channel_wrapper(rank, channel)
        try:
            return align(key_lists[rank], rank, world, channel, label_party)
        except BaseException:
            hub.close()
            raise

    with ThreadPoolExecutor(max_workers=world, thread_name_prefix="psi-party") as pool:
        futures = [pool.submit(party, rank) for rank in range(world)]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, ChannelClosed)), errors[0])
    return [f.result() for f in futures]
