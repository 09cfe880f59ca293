"""One-way links: authenticated encryption of every message between two members.

Between every ordered pair of members (a, b) there is one link: a writes, b reads, and a reader
thread at b drains it into memory as messages arrive, so a send never waits for the receiving
program. The link's 256-bit key is chosen by a and sent to b inside the TLS 1.3 session that
authenticated them (:mod:`~fedtrain.transport.mesh`); the data then travels as AES-256-GCM
frames (OpenSSL, through the ``cryptography`` library) on the same TCP connection:

    frame = length (u32, big-endian) ‖ AES-256-GCM(key, nonce = frame counter, aad = length)

The nonce is the frame's position in the link (96-bit counter, never reused under a key that is
fresh per link), so a frame that is modified, dropped, replayed, reordered or injected fails
authentication and breaks the link; a cut connection is seen as one. Frames hold at most 1 MiB,
so large tensors are encrypted and decrypted with a few calls, in place, at memory speed (TLS's
16 KiB records made the all-reduce several times slower than plain TCP; docs/transport.md).

A message is a 21-byte header frame (kind, group, key, length) and its payload frames. ``group``
names the process group (the groups of one world share its links); ``key`` is the collective's
sequence number for collective traffic and the tag for point-to-point traffic.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque

import torch
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from torch.futures import Future

HEADER = struct.Struct("<BIQQ")  # kind, group, key, payload bytes
COLLECTIVE, P2P = 1, 2
FRAME = 1 << 20
TAG = 16
KEY_BYTES = 32
_LENGTH = struct.Struct(">I")


class LinkError(RuntimeError):
    """A link broke, failed authentication, or its peer went silent (a RuntimeError, as gloo's
    errors are, so callers that treat a failed collective as a peer failure keep working)."""


def as_bytes(tensor: torch.Tensor) -> memoryview:
    """The bytes of a tensor (without copying when it is contiguous)."""
    flat = tensor.detach().reshape(-1)
    if not flat.is_contiguous():
        flat = flat.contiguous()
    return memoryview(flat.view(torch.uint8).numpy())


class _Pool:
    """Reused receive buffers (fresh multi-MB buffers page-fault on every message, which on
    this kind of VM costs more than decrypting them)."""

    def __init__(self, per_size: int = 8) -> None:
        self._free: dict[int, list[torch.Tensor]] = {}
        self._lock = threading.Lock()
        self._per_size = per_size

    def get(self, n: int) -> torch.Tensor:
        if n >= 1 << 16:
            with self._lock:
                free = self._free.get(n)
                if free:
                    return free.pop()
        return torch.empty(n, dtype=torch.uint8)

    def put(self, buf: torch.Tensor) -> None:
        n = buf.numel()
        if n >= 1 << 16:
            with self._lock:
                free = self._free.setdefault(n, [])
                if len(free) < self._per_size:
                    free.append(buf)


pool = _Pool()


def recycle(buf: torch.Tensor) -> None:
    """Give a buffer returned by :meth:`InLink.take` back once its contents are used."""
    pool.put(buf)


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


class OutLink:
    """The sending end of a link to ``peer``; a send blocks at most ``timeout_s`` on a peer that
    stops reading."""

    def __init__(self, sock: socket.socket, peer: str, key: bytes, timeout_s: float) -> None:
        self.sock, self.peer = sock, peer
        self.sent = 0
        self._aead = AESGCM(key)
        self._counter = 0
        self._buf = bytearray(_LENGTH.size + FRAME + TAG)
        self._lock = threading.Lock()
        seconds = int(timeout_s)
        usec = int((timeout_s - seconds) * 1e6)
        # the socket stays blocking; SO_SNDTIMEO makes a send to a stopped peer fail
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, usec))

    def send(self, kind: int, group: int, key: int, payload: memoryview | bytes) -> None:
        """Send one message (raises LinkError if the link is broken)."""
        header = HEADER.pack(kind, group, key, len(payload))
        view = memoryview(payload).cast("B")
        try:
            with self._lock:
                if len(view) + HEADER.size <= 4096:  # one write for small messages
                    head = bytes(self._seal(header))
                    self.sock.sendall(head + bytes(self._seal(view)))
                else:
                    self.sock.sendall(self._seal(header))
                    for start in range(0, len(view), FRAME):
                        self.sock.sendall(self._seal(view[start:start + FRAME]))
        except OSError as err:
            raise LinkError(f"connection to {self.peer} lost while sending ({err})") from None

    def _seal(self, plain: memoryview | bytes) -> memoryview:
        """The next frame for ``plain`` (a view of a reused buffer: send it before the next)."""
        n = len(plain) + TAG
        length = _LENGTH.pack(n)
        self._buf[:_LENGTH.size] = length
        out = memoryview(self._buf)[_LENGTH.size:_LENGTH.size + n]
        self._aead.encrypt_into(_nonce(self._counter), plain, length, out)
        self._counter += 1
        self.sent += _LENGTH.size + n
        return memoryview(self._buf)[:_LENGTH.size + n]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class _PendingRecv:
    __slots__ = ("deadline", "dest", "future")

    def __init__(self, dest: torch.Tensor, deadline: float) -> None:
        self.dest, self.deadline, self.future = dest, deadline, Future()


class InLink:
    """The receiving end of a link from ``peer``: a thread reads every message into an inbox.

    Collective messages wait in a FIFO per (group, sequence number) until :meth:`take` asks for
    them; point-to-point messages are matched with posted receives (:meth:`post_recv`) in
    order, and decrypted straight into the destination tensor when it was posted first.
    """

    def __init__(self, sock: socket.socket, peer: str, key: bytes) -> None:
        self.sock, self.peer = sock, peer
        self.received = 0
        self.error: str | None = None
        self._aead = AESGCM(key)
        self._counter = 0
        self._file = sock.makefile("rb", buffering=1 << 18)
        self._cipher = bytearray(FRAME + TAG)
        self._cond = threading.Condition()
        self._collective: dict[tuple[int, int], deque[torch.Tensor]] = {}
        self._unexpected: dict[tuple[int, int], deque[torch.Tensor]] = {}
        self._pending: dict[tuple[int, int], deque[_PendingRecv]] = {}
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"link<-{peer}", daemon=True)
        self._thread.start()

    # -- reader thread -------------------------------------------------------------------------
    def _open(self, out: memoryview) -> None:
        """Read the next frame and decrypt it into ``out`` (which has the plaintext's size)."""
        length = self._file.read(_LENGTH.size)
        if len(length) != _LENGTH.size:
            raise EOFError
        (n,) = _LENGTH.unpack(length)
        if n != len(out) + TAG:
            raise LinkError(f"frame of {n} bytes from {self.peer} where {len(out) + TAG} were "
                            "due (tampered or out of step)")
        cipher = memoryview(self._cipher)[:n]
        if self._file.readinto(cipher) != n:
            raise EOFError
        try:
            self._aead.decrypt_into(_nonce(self._counter), cipher, length, out)
        except InvalidTag:
            raise LinkError(f"a frame from {self.peer} failed authentication "
                            "(modified, replayed or injected on the way)") from None
        self._counter += 1
        self.received += _LENGTH.size + n

    def _read_payload(self, out: memoryview) -> None:
        for start in range(0, len(out), FRAME):
            self._open(out[start:start + FRAME])
        if not len(out):
            self._open(out)

    def _run(self) -> None:
        header = bytearray(HEADER.size)
        try:
            while True:
                self._open(memoryview(header))
                kind, group, tag, n = HEADER.unpack(header)
                key = (group, tag)
                if kind == P2P and self._read_posted(key, n):
                    continue
                buf = pool.get(n)
                self._read_payload(memoryview(buf.numpy()))
                with self._cond:
                    box = self._collective if kind == COLLECTIVE else self._unexpected
                    box.setdefault(key, deque()).append(buf)
                    if kind == P2P:
                        self._match_unexpected(key)
                    self._cond.notify_all()
        except BaseException as err:  # EOF, reset, a frame failing authentication, or close()
            if self._closing:
                reason = "link closed"
            elif isinstance(err, LinkError):
                reason = str(err)
            else:
                reason = f"connection from {self.peer} closed by peer" + (
                    "" if isinstance(err, EOFError) else f" ({err})")
            self._fail(reason)

    def _read_posted(self, key: tuple[int, int], n: int) -> bool:
        """Decrypt a point-to-point payload straight into an earlier posted receive."""
        with self._cond:
            queue = self._pending.get(key)
            if not queue or self._unexpected.get(key) or _nbytes(queue[0].dest) != n \
                    or not queue[0].dest.is_contiguous():
                return False
            pending = queue.popleft()
        self._read_payload(as_bytes(pending.dest))
        pending.future.set_result([pending.dest])
        return True

    def _match_unexpected(self, key: tuple[int, int]) -> None:
        """Hand buffered messages to receives posted meanwhile (under the lock)."""
        buffered, queue = self._unexpected.get(key), self._pending.get(key)
        while buffered and queue:
            _deliver(queue.popleft(), buffered.popleft())

    def _fail(self, reason: str) -> None:
        with self._cond:
            self.error = self.error or reason
            pending = [p for q in self._pending.values() for p in q]
            self._pending.clear()
            self._cond.notify_all()
        for p in pending:
            p.future.set_exception(LinkError(self.error))

    # -- consumers -----------------------------------------------------------------------------
    def take(self, group: int, seq: int, deadline: float) -> torch.Tensor:
        """The next message of collective ``seq`` of ``group`` (uint8 tensor); LinkError on
        failure or timeout."""
        key = (group, seq)
        with self._cond:
            while True:
                box = self._collective.get(key)
                if box:
                    buf = box.popleft()
                    if not box:
                        del self._collective[key]
                    return buf
                if self.error is not None:
                    raise LinkError(self.error)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LinkError(f"timed out waiting for {self.peer}")
                self._cond.wait(remaining)

    def post_recv(self, group: int, tag: int, dest: torch.Tensor, deadline: float) -> Future:
        """A future completed once the next message of ``group`` with ``tag`` is in ``dest``."""
        key = (group, tag)
        pending = _PendingRecv(dest, deadline)
        with self._cond:
            if self.error is not None:
                pending.future.set_exception(LinkError(self.error))
                return pending.future
            self._pending.setdefault(key, deque()).append(pending)
            self._match_unexpected(key)
        if not pending.future.done():
            watchdog.watch(self, pending)
        return pending.future

    def expire(self, pending: _PendingRecv) -> None:
        """Fail ``pending`` if it is still waiting (called by the watchdog at its deadline)."""
        with self._cond:
            for queue in self._pending.values():
                if pending in queue:
                    queue.remove(pending)
                    break
            else:
                return
        pending.future.set_exception(LinkError(f"timed out waiting for {self.peer}"))

    def close(self) -> None:
        """Stop reading (wakes the reader thread)."""
        self._closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _deliver(pending: _PendingRecv, buf: torch.Tensor) -> None:
    dest = pending.dest
    if buf.numel() != _nbytes(dest):
        pending.future.set_exception(LinkError(
            f"message of {buf.numel()} bytes for a receive of {_nbytes(dest)}"))
        return
    dest.copy_(buf.view(dest.dtype).reshape(dest.shape))
    pool.put(buf)
    pending.future.set_result([dest])


class _Watchdog:
    """Fails posted receives that pass their deadline (torch's Work.wait() has no timeout of its
    own for future-backed work)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[tuple[InLink, _PendingRecv]] = []
        self._thread: threading.Thread | None = None

    def watch(self, link: InLink, pending: _PendingRecv) -> None:
        with self._cond:
            self._items.append((link, pending))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="recv-watchdog",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._items = [(k, p) for k, p in self._items if not p.future.done()]
                now = time.monotonic()
                due = [(k, p) for k, p in self._items if p.deadline <= now]
                if not due:
                    nearest = min((p.deadline for _, p in self._items), default=None)
                    self._cond.wait(None if nearest is None else max(0.0, nearest - now) + 0.01)
                    continue
            for link, pending in due:
                link.expire(pending)


watchdog = _Watchdog()
