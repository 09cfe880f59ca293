"""Opening and accepting links: one listener per process, a dialler per outgoing link.

A world registers a random *nonce* with this process's :class:`Listener` and publishes
``{host, port, nonce}`` under its own key in the rendezvous store. Every other member dials that
address, and both ends authenticate before any data flows:

1. TLS 1.3 handshake, each end presenting its federation certificate (mutual TLS, pinned to the
   federation CA);
2. the dialler checks that the listener is the member it expects at that rank;
3. inside TLS the dialler sends its hello ``{federation, digest, nonce, rank, key}``; the
   listener checks that both hold the same federation.json (``digest``) and that the
   certificate it saw is the member the group names for the claimed rank, and answers
   ``{"ok": true}`` or the reason it refuses;
4. the link's data frames, encrypted and authenticated with the fresh ``key`` the dialler chose
   (:mod:`~fedtrain.transport.links`), follow on the same connection.

A refused peer is reported (``on_refused``) and closed; nothing it sent goes further. Handshakes
run in their own threads with a time limit and a cap on how many run at once, so a silent or
garbage-sending client cannot hold the listener up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from crypten_fl.fedtrain.transport.acceptor import Acceptor
from crypten_fl.fedtrain.transport.channels import Credentials, Handshake, PeerRefused, describe
from crypten_fl.fedtrain.transport.channels import handshake_error as _handshake_error
from crypten_fl.fedtrain.transport.links import KEY_BYTES, InLink, OutLink

HANDSHAKE_TIMEOUT_S = 30.0  # generous: a member on a loaded machine may be slow to answer
_MAX_HELLO = 1 << 12
_MAX_CONCURRENT_HANDSHAKES = 64

RefusedFn = Callable[[PeerRefused], None]


def send_control(session: Handshake, message: dict[str, object]) -> None:
    payload = json.dumps(message).encode()
    session.send(len(payload).to_bytes(4, "big") + payload)


def recv_control(session: Handshake) -> dict[str, object]:
    """One control message (raises ValueError on anything else)."""
    n = int.from_bytes(session.recv_exact(4), "big")
    if n > _MAX_HELLO:
        raise ValueError("oversized hello")
    message = json.loads(session.recv_exact(n))
    if not isinstance(message, dict):
        raise ValueError("malformed hello")
    return message


@dataclass
class _Route:
    expected: Callable[[int], str]  # group rank -> member name
    deliver: Callable[[int, InLink], None]


class Listener:
    """Accepts incoming links for every world of this process on one TCP port."""

    def __init__(self, credentials: Credentials, host: str, port: int = 0,
                 advertise: str | None = None, on_refused: RefusedFn | None = None) -> None:
        self.credentials = credentials
        self.on_refused = on_refused
        self._context = credentials.server_context()
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._acceptor = Acceptor(host, port, self._admit, _MAX_CONCURRENT_HANDSHAKES, "listener")
        self.host = advertise or host
        self.port = self._acceptor.port

    def register(self, nonce: str, expected: Callable[[int], str],
                 deliver: Callable[[int, InLink], None]) -> None:
        with self._lock:
            self._routes[nonce] = _Route(expected, deliver)

    def unregister(self, nonce: str) -> None:
        with self._lock:
            self._routes.pop(nonce, None)

    def close(self) -> None:
        self._acceptor.close()

    def _admit(self, sock: socket.socket, address: str) -> None:
        try:
            rank, route, link = self._handshake(sock, address)
        except PeerRefused as refused:
            with contextlib.suppress(OSError):
                sock.close()
            if self.on_refused is not None:
                self.on_refused(refused)
            return
        route.deliver(rank, link)

    def _handshake(self, sock: socket.socket, address: str) -> tuple[int, _Route, InLink]:
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        session = Handshake(sock, self._context, server_side=True)
        try:
            session.run()
            member = self.credentials.identify_peer(session.peer_certificate(), address)
            hello = recv_control(session)
        except PeerRefused:
            raise
        except (OSError, ssl.SSLError, ValueError, EOFError) as err:
            raise _handshake_error(address, err) from None
        try:
            rank, route, key = self._check_hello(hello, member, session)
        except PeerRefused as refused:
            with contextlib.suppress(OSError, ssl.SSLError):
                send_control(session, {"ok": False, "reason": refused.reason})
            raise PeerRefused(address, refused.reason) from None
        send_control(session, {"ok": True})
        sock.settimeout(None)
        return rank, route, InLink(sock, member, key)

    def _check_hello(self, hello: dict[str, object], member: str,
                     session: Handshake) -> tuple[int, _Route, bytes]:
        def refuse(reason: str) -> PeerRefused:
            return PeerRefused("", reason)

        if hello.get("federation") != self.credentials.federation_id:
            raise refuse(f"{member}: hello for another federation ({hello.get('federation')!r})")
        if hello.get("digest", "") != self.credentials.federation_digest:
            raise refuse(f"{member} holds another federation.json (every member needs the same "
                         "file; after a rotation, distribute the new one to every site)")
        route = self._routes.get(str(hello.get("nonce")))
        if route is None:
            raise refuse(f"{member}: no such group here (stale or forged address)")
        rank = hello.get("rank")
        if not isinstance(rank, int):
            raise refuse(f"{member}: hello without a rank")
        try:
            expected = route.expected(rank)
        except (IndexError, KeyError, ValueError):
            raise refuse(f"{member} claims rank {rank}, which this group does not have") from None
        if member != expected:
            raise refuse(f"certificate of {member} claims rank {rank} (which is {expected})")
        try:
            key = base64.b64decode(str(hello.get("key")), validate=True)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise refuse(f"{member}: hello without a valid link key")
        if not session.drained():
            raise refuse(f"{member}: sent data before the hello was answered")
        return rank, route, key


def dial(credentials: Credentials, host: str, port: int, expected: str, hello: dict[str, object],
         deadline: float, timeout_s: float) -> OutLink:
    """Open the outgoing link to ``expected`` at ``host:port`` (retrying until ``deadline``
    while nobody listens yet); PeerRefused if either end refuses the other."""
    address = describe((host, port))
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_S)
            break
        except OSError as err:
            if time.monotonic() > deadline:
                raise PeerRefused(address, f"cannot connect to {expected} "
                                           f"({err.strerror or err})") from None
            time.sleep(0.1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small MPC messages: no delay
    key = os.urandom(KEY_BYTES)  # this link's data key, known to the two ends only
    session = Handshake(sock, credentials.client_context(), server_side=False)
    try:
        session.run()
        credentials.identify_peer(session.peer_certificate(), address, expected)
        send_control(session, {**hello, "key": base64.b64encode(key).decode(),
                               "digest": credentials.federation_digest})
        answer = recv_control(session)
    except PeerRefused:
        sock.close()
        raise
    except (OSError, ssl.SSLError, ValueError, EOFError) as err:
        sock.close()
        raise _handshake_error(address, err) from None
    if answer.get("ok") is not True:
        sock.close()
        raise PeerRefused(address, f"{expected} refused this member: {answer.get('reason')}")
    if not session.drained():
        sock.close()
        raise PeerRefused(address, f"{expected} sent data after its answer")
    sock.settimeout(None)
    return OutLink(sock, expected, key, timeout_s)
