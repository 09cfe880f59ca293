"""The rendezvous store over mutually authenticated TLS, with keys only their owner may write.

A drop-in ``torch.distributed.Store`` (:class:`TlsStore`) and its server (:class:`StoreServer`),
replacing the plaintext TCPStore. The store holds membership records and link addresses, never
data. Every client presents its federation certificate and the server knows who wrote what:

**Owned keys.** A key with a path segment ``@<member>`` (e.g. ``e0/pg/@hospital_1/link``) may be
written only by that member. Members publish their link addresses and their own membership
records (arrival after a failure, a request to rejoin) under such keys, so no other member can
redirect a hospital's links or speak for it.

Protocol: after the handshake the server greets an accepted client (or says why it refuses it);
then request ``op (u8), n (u32)`` followed by n length-prefixed byte fields; response
``status (u8), n (u32)`` and fields. One request at a time per connection; a waiting request
(``get``, ``wait``) holds only its own connection's server thread.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence

import torch.distributed as dist
from crypten_fl.fedtrain.transport.acceptor import Acceptor
from crypten_fl.fedtrain.transport.channels import (
    Credentials,
    PeerRefused,
    describe,
    handshake_error,
)
from crypten_fl.fedtrain.transport.mesh import HANDSHAKE_TIMEOUT_S, RefusedFn

_HEAD = struct.Struct("<BI")
_LEN = struct.Struct("<I")
SET, GET, ADD, CHECK, WAIT, DELETE, COMPARE_SET, NUM_KEYS, APPEND, MULTI_GET, MULTI_SET = range(11)
OK, ERROR, TIMEOUT = range(3)
GREETING = b"crypten-fl store v1"
_MAX_FIELD = 1 << 24
_MAX_CLIENTS = 256


class StoreError(RuntimeError):
    """A store request failed (refused, lost connection)."""


def owner(key: str) -> str | None:
    """The member a key belongs to (its ``@member`` segment), or None for shared keys."""
    owners = {part[1:] for part in key.split("/") if part.startswith("@")}
    if len(owners) > 1:
        return "\0several"  # nobody may write a key that names two owners
    return next(iter(owners), None)


def _send(sock: ssl.SSLSocket, code: int, fields: Sequence[bytes]) -> None:
    parts = [_HEAD.pack(code, len(fields))]
    for f in fields:
        parts += [_LEN.pack(len(f)), f]
    sock.sendall(b"".join(parts))


def _recv(reader: Callable[[int], bytes]) -> tuple[int, list[bytes]]:
    code, n = _HEAD.unpack(reader(_HEAD.size))
    if n > 4096:
        raise ValueError("too many fields")
    fields = []
    for _ in range(n):
        (size,) = _LEN.unpack(reader(_LEN.size))
        if size > _MAX_FIELD:
            raise ValueError("field too large")
        fields.append(reader(size))
    return code, fields


def _exact(sock: ssl.SSLSocket) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("connection closed")
            data += chunk
        return bytes(data)
    return read


class StoreServer:
    """Hosts the store on ``host:port`` for the members of one federation.

    ``local_*`` methods let the hosting process (the launcher, a rendezvous node) read and write
    directly.
    """

    def __init__(self, credentials: Credentials, host: str, port: int,
                 on_refused: RefusedFn | None = None) -> None:
        self.credentials, self.on_refused = credentials, on_refused
        self._context = credentials.server_context()
        self._data: dict[str, bytes] = {}
        self._cond = threading.Condition()
        self._acceptor = Acceptor(host, port, self._serve, _MAX_CLIENTS, "store-server")
        self.port = self._acceptor.port

    # -- direct access for the hosting process -------------------------------------------------
    def local_set(self, key: str, value: str | bytes) -> None:
        with self._cond:
            self._data[key] = value.encode() if isinstance(value, str) else value
            self._cond.notify_all()

    def local_check(self, key: str) -> bool:
        with self._cond:
            return key in self._data

    def close(self) -> None:
        self._acceptor.close()

    # -- network -------------------------------------------------------------------------------
    def _serve(self, raw: socket.socket, address: str) -> None:
        try:
            sock, member = self._admit(raw, address)
        except PeerRefused as refused:
            if self.on_refused is not None:
                self.on_refused(refused)
            return
        read = _exact(sock)
        try:
            while True:
                op, fields = _recv(read)
                code, reply = self._execute(op, fields, member)
                if code == ERROR and self.on_refused is not None:  # e.g. another's key
                    self.on_refused(PeerRefused(address, reply[0].decode()))
                _send(sock, code, reply)
        except (OSError, EOFError, ValueError, struct.error):
            pass  # client left (or sent garbage after authenticating: drop it)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _admit(self, raw: socket.socket, address: str) -> tuple[ssl.SSLSocket, str]:
        raw.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            sock = self._context.wrap_socket(raw, server_side=True)
        except (OSError, ValueError) as err:
            raw.close()
            raise handshake_error(address, err) from None
        try:
            member = self.credentials.identify_peer(sock.getpeercert(binary_form=True), address)
        except PeerRefused as refused:
            with contextlib.suppress(OSError, ssl.SSLError):
                _send(sock, ERROR, [refused.reason.encode()])
            sock.close()
            raise
        try:  # the greeting: the client sends nothing before it knows it was accepted
            _send(sock, OK, [GREETING, self.credentials.federation_digest.encode()])
        except (OSError, ssl.SSLError) as err:
            sock.close()
            raise handshake_error(address, err) from None
        sock.settimeout(None)
        return sock, member

    def _execute(self, op: int, f: list[bytes], member: str) -> tuple[int, list[bytes]]:
        writes = {SET: f[:1], ADD: f[:1], DELETE: f[:1], COMPARE_SET: f[:1], APPEND: f[:1],
                  MULTI_SET: f[0::2]}
        for key in writes.get(op, []):
            who = owner(key.decode())
            if who is not None and who != member:
                return ERROR, [f"{member} may not write {key.decode()!r}".encode()]
        with self._cond:
            data = self._data
            if op == SET:
                data[f[0].decode()] = f[1]
            elif op == ADD:
                key = f[0].decode()
                value = int(data.get(key, b"0")) + int(f[1])
                data[key] = str(value).encode()
                self._cond.notify_all()
                return OK, [str(value).encode()]
            elif op == APPEND:
                key = f[0].decode()
                data[key] = data.get(key, b"") + f[1]
            elif op == MULTI_SET:
                for k, v in zip(f[0::2], f[1::2], strict=True):
                    data[k.decode()] = v
            elif op == DELETE:
                existed = data.pop(f[0].decode(), None) is not None
                return OK, [b"1" if existed else b"0"]
            elif op == COMPARE_SET:
                key, expected, desired = f[0].decode(), f[1], f[2]
                current = data.get(key)
                if (current is None and expected == b"") or current == expected:
                    data[key] = desired
                    current = desired
                self._cond.notify_all()
                return OK, [current if current is not None else expected]
            elif op == CHECK:
                return OK, [b"1" if all(k.decode() in data for k in f) else b"0"]
            elif op == NUM_KEYS:
                return OK, [str(len(data)).encode()]
            elif op in (GET, WAIT, MULTI_GET):
                timeout = int(f[0]) / 1000.0
                keys = [k.decode() for k in f[1:]]
                end = time.monotonic() + timeout
                while not all(k in data for k in keys):
                    remaining = end - time.monotonic()
                    if remaining <= 0 or self._acceptor.closed:
                        return TIMEOUT, [", ".join(keys).encode()]
                    self._cond.wait(min(remaining, 1.0))
                return OK, [] if op == WAIT else [data[k] for k in keys]
            else:
                return ERROR, [f"unknown store operation {op}".encode()]
            self._cond.notify_all()
            return OK, []


class TlsStore(dist.Store):
    """Client of a :class:`StoreServer`; refuses a server that is not ``server_member``."""

    def __init__(self, credentials: Credentials, host: str, port: int, server_member: str,
                 timeout: datetime.timedelta, connect_deadline_s: float | None = None) -> None:
        super().__init__()
        self.set_timeout(timeout)
        self.address = describe((host, port))
        self._lock = threading.Lock()
        deadline = time.monotonic() + (connect_deadline_s if connect_deadline_s is not None
                                       else timeout.total_seconds())
        pause = 0.05
        while True:
            try:
                raw = socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_S)
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise StoreError(f"rendezvous store {self.address}: cannot connect "
                                     f"({err.strerror or err})") from None
                time.sleep(pause)  # the store may not be up yet: back off, up to 1 s
                pause = min(2 * pause, 1.0)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._sock = credentials.client_context().wrap_socket(raw)
        except (OSError, ValueError) as err:
            raw.close()
            raise StoreError(f"rendezvous store {handshake_error(self.address, err)}") from None
        try:
            credentials.identify_peer(self._sock.getpeercert(binary_form=True), self.address,
                                      server_member)
            self._read = _exact(self._sock)
            code, greeting = _recv(self._read)
        except PeerRefused as refused:
            self._sock.close()
            raise StoreError(f"rendezvous store {refused}") from None
        except (OSError, EOFError, ValueError, struct.error) as err:
            self._sock.close()
            raise StoreError(f"rendezvous store {handshake_error(self.address, err)}") from None
        if code != OK or greeting[:1] != [GREETING]:
            self._sock.close()
            reason = greeting[0].decode(errors="replace") if greeting else "no greeting"
            raise StoreError(f"rendezvous store {self.address} refused this member: {reason}")
        if greeting[1:] != [credentials.federation_digest.encode()]:
            self._sock.close()
            raise StoreError(f"rendezvous store {self.address} holds another federation.json "
                             "(every member needs the same file)")
        self._sock.settimeout(None)

    def _call(self, op: int, fields: Sequence[bytes]) -> list[bytes]:
        with self._lock:
            try:
                _send(self._sock, op, fields)
                code, reply = _recv(self._read)
            except (OSError, EOFError, ValueError, struct.error) as err:
                raise StoreError(f"rendezvous store {self.address}: connection lost "
                                 f"({err})") from None
        if code == TIMEOUT:
            raise dist.DistStoreError(f"rendezvous store {self.address}: timed out waiting "
                                      f"for {reply[0].decode()}")
        if code != OK:
            raise StoreError(f"rendezvous store {self.address}: {reply[0].decode()}")
        return reply

    def _ms(self, timeout: datetime.timedelta | None = None) -> bytes:
        return str(int((timeout or self.timeout).total_seconds() * 1000)).encode()

    def set(self, key: str, value: str | bytes) -> None:
        self._call(SET, [key.encode(), _bytes(value)])

    def get(self, key: str) -> bytes:
        return self._call(GET, [self._ms(), key.encode()])[0]

    def add(self, key: str, value: int) -> int:
        return int(self._call(ADD, [key.encode(), str(int(value)).encode()])[0])

    def append(self, key: str, value: str | bytes) -> None:
        self._call(APPEND, [key.encode(), _bytes(value)])

    def compare_set(self, key: str, expected: str | bytes, desired: str | bytes) -> bytes:
        return self._call(COMPARE_SET, [key.encode(), _bytes(expected), _bytes(desired)])[0]

    def delete_key(self, key: str) -> bool:
        return self._call(DELETE, [key.encode()])[0] == b"1"

    def check(self, keys: list[str]) -> bool:
        return self._call(CHECK, [k.encode() for k in keys])[0] == b"1"

    def num_keys(self) -> int:
        return int(self._call(NUM_KEYS, [])[0])

    def wait(self, keys: list[str], timeout: datetime.timedelta | None = None) -> None:
        self._call(WAIT, [self._ms(timeout), *(k.encode() for k in keys)])

    def multi_get(self, keys: list[str]) -> list[bytes]:
        return self._call(MULTI_GET, [self._ms(), *(k.encode() for k in keys)])

    def multi_set(self, keys: list[str], values: list[str | bytes]) -> None:
        fields: list[bytes] = []
        for k, v in zip(keys, values, strict=True):
            fields += [k.encode(), _bytes(v)]
        self._call(MULTI_SET, fields)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
