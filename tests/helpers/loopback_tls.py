"""Real bytes of the secure transport on loopback: a throw-away CA and a recording TCP relay.

Test-only stand-ins for what ``crypten-fl provision`` makes (fedtrain.identity, not in this
worktree yet): a CA and one certificate per member, enough for
:class:`fedtrain.transport.channels.Credentials`. The :class:`Relay` sits between a dialler and a
listener and keeps every byte each way, as an observer of the link would see them.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import threading
from pathlib import Path

from crypten_fl.fedtrain.transport.channels import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FEDERATION = "loopback-test-federation"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
                 issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "encipher_only", "decipher_only"), False)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca,
                                            crl_sign=ca, **usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def credentials(root: Path, members: list[str]) -> dict[str, Credentials]:
    """A CA under ``root`` and the credentials of each member, which identify each other by
    certificate."""
    root.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("loopback CA", ca_key, "loopback CA", ca_key, ca=True)
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    names: dict[bytes, str] = {}
    paths = {}
    for member in members:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(member, key, "loopback CA", ca_key, ca=False)
        names[cert.public_bytes(serialization.Encoding.DER)] = member
        paths[member] = (root / f"{member}.pem", root / f"{member}.key")
        paths[member][0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[member][1].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    def identify(der: bytes) -> str:
        if der not in names:
            raise ValueError("not a member of this federation")
        return names[der]

    return {m: Credentials(me=m, federation_id=FEDERATION, cert=paths[m][0], key=paths[m][1],
                           ca=root / "ca.pem", identify=identify) for m in members}


class Relay:
    """Forwards every connection made to ``port`` to ``target`` and records both directions:
    ``connections[i] == [client-to-server bytes, server-to-client bytes]`` once closed."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.connections: list[list[bytes]] = []
        self._threads: list[threading.Thread] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            record: list[bytes] = [b"", b""]
            self.connections.append(record)
            for i, (a, b) in enumerate(((client, server), (server, client))):
                thread = threading.Thread(target=self._pump, args=(a, b, record, i), daemon=True)
                thread.start()
                self._threads.append(thread)

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket, record: list[bytes], i: int) -> None:
        chunks = []
        with contextlib.suppress(OSError):
            while data := a.recv(1 << 16):
                chunks.append(data)
                b.sendall(data)
        record[i] = b"".join(chunks)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def close(self, timeout: float = 5.0) -> list[list[bytes]]:
        """Stop accepting, wait for the recorded connections to end; returns them."""
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout)
        return self.connections
