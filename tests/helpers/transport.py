"""Credentials for transport tests: members from real kits, impostors from bad certificates."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity import load_kit
from crypten_fl.fedtrain.transport.channels import Credentials, PeerRefused
from crypten_fl.fedtrain.transport.join import credentials_from_kit
from crypten_fl.fedtrain.transport.links import InLink
from crypten_fl.fedtrain.transport.mesh import Listener
from cryptography import x509


def member(kits: Path, name: str) -> Credentials:
    """The credentials of kit ``name`` of the federation in ``kits``."""
    return credentials_from_kit(load_kit(kits / name))


def impostor(kits: Path, name: str, key: certs.PrivateKey, cert: x509.Certificate,
             directory: Path, ca: Path | None = None) -> Credentials:
    """Credentials presenting ``cert`` (for ``key``), judging peers as kit ``name`` would.

    ``ca`` (default: the federation's) is what the impostor itself trusts."""
    honest = member(kits, name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "member.key").write_bytes(certs.key_pem(key))
    (directory / "member.crt").write_bytes(certs.cert_pem(cert))
    return Credentials(me=name, federation_id=honest.federation_id, cert=directory / "member.crt",
                       key=directory / "member.key", ca=ca or honest.ca,
                       identify=honest.identify)


@dataclass
class Accepting:
    """A listener of ``names[0]``'s group: the links it accepted and the peers it refused."""

    listener: Listener
    nonce: str
    names: list[str]
    links: dict[int, InLink] = field(default_factory=dict)
    refused: list[PeerRefused] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def deliver(self, rank: int, link: InLink) -> None:
        with self._cond:
            self.links[rank] = link
            self._cond.notify_all()

    def refuse(self, refused: PeerRefused) -> None:
        with self._cond:
            self.refused.append(refused)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                assert remaining > 0, "timed out"
                self._cond.wait(remaining)


def accepting(credentials: Credentials, names: list[str]) -> Accepting:
    """A listener on loopback with one group registered (nonce ``"group"``)."""
    holder: list[Accepting] = []
    listener = Listener(credentials, "127.0.0.1", on_refused=lambda r: holder[0].refuse(r))
    acc = Accepting(listener, "group", names)
    holder.append(acc)
    listener.register("group", names.__getitem__, acc.deliver)
    return acc


def raw_connection(port: int, data: bytes = b"", close: bool = True) -> socket.socket:
    """A plain TCP client that sends ``data`` (a non-TLS peer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if data:
        sock.sendall(data)
    if close:
        sock.close()
    return sock
