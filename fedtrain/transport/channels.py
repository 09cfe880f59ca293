"""TLS 1.3 channels pinned to one federation, with the peer's identity checked at each end.

Both ends present a certificate issued by the federation's CA (mutual TLS, TLS 1.3 only, no
system trust store, no session tickets), and after the handshake each end maps the peer's
certificate to a member of the federation (:class:`Credentials.identify`) and compares it with
the member it expects at that rank. A certificate of hospital 2 presented as rank 1 is therefore
refused even though the CA signed it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class PeerRefused(Exception):
    """A peer failed authentication; ``reason`` is one line saying why."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address, self.reason = address, reason


@dataclass(frozen=True)
class Credentials:
    """What a member needs to open and accept channels.

    Args:
        me: this member's name (e.g. ``hospital_1``).
        federation_id: the federation's id (checked in every hello).
        cert, key, ca: PEM files of this member's certificate and key and of the federation CA.
        identify: peer certificate (DER) → member name; raises with a short reason when the
            certificate belongs to no member of this federation.
        federation_digest: SHA-256 of this member's federation.json; peers must hold the same
            one (after a rotation, a site with the old file would still accept the old key).
    """

    me: str
    federation_id: str
    cert: Path
    key: Path
    ca: Path
    identify: Callable[[bytes], str]
    federation_digest: str = ""

    def server_context(self) -> ssl.SSLContext:
        """Context of the accepting end: requires a client certificate from the CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.num_tickets = 0  # no session tickets: nothing but our own messages after a handshake
        return self._configure(ctx)

    def client_context(self) -> ssl.SSLContext:
        """Context of the dialling end: the server's name is checked by identity, not DNS."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # identities are checked by identify(), against the CA
        return self._configure(ctx)

    def _configure(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
        ctx.load_verify_locations(cafile=str(self.ca))  # the federation CA only
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def identify_peer(self, der: bytes | None, address: str, expected: str | None = None) -> str:
        """The member a peer's certificate (DER) belongs to; PeerRefused if it belongs to no
        member of this federation, or to another member than ``expected``."""
        if der is None:
            raise PeerRefused(address, "presented no certificate")
        try:
            member = self.identify(der)
        except Exception as err:  # IdentityError, or a certificate we cannot even parse
            raise PeerRefused(address, str(err) or type(err).__name__) from None
        if expected is not None and member != expected:
            raise PeerRefused(address, f"certificate of {member}, expected {expected}")
        return member


#: TLS alerts from the other end, said as what they mean here
_ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": ": the peer does not trust this federation's CA",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": ": the peer says our certificate has expired",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": ": the peer requires a certificate",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": ": the peer presented no certificate",
}


def handshake_error(address: str, err: BaseException) -> PeerRefused:
    """A failed handshake as one line: the reason OpenSSL gives, without the noise."""
    if isinstance(err, ssl.SSLCertVerificationError):
        reason = err.verify_message or err.reason or "certificate verification failed"
        return PeerRefused(address, f"certificate refused ({reason})")
    if isinstance(err, ssl.SSLError):
        reason = str(err.reason or err)
        return PeerRefused(address, "TLS handshake failed" + _ALERTS.get(reason, f" ({reason})"))
    if isinstance(err, socket.timeout | TimeoutError):
        return PeerRefused(address, "no TLS handshake within the time limit")
    return PeerRefused(address, f"connection failed during the handshake ({err})")


def describe(address: tuple[str, int] | str) -> str:
    """``host:port`` of a socket address."""
    if isinstance(address, str):
        return address
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Handshake:
    """A TLS 1.3 session over a raw socket, driven through memory BIOs.

    Used to authenticate both ends and to carry the hello of a link (including the link's data
    key); OpenSSL never owns the socket, so after the hello the link's data frames
    (:mod:`~fedtrain.transport.links`) follow on the same TCP connection.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool) -> None:
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=server_side)

    def run(self) -> None:
        """Complete the handshake (raises ssl.SSLError / OSError / EOFError)."""
        try:
            while True:
                try:
                    self._tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self._flush()
                    self._fill()
        finally:
            self._flush()  # our Finished, or the alert that tells the peer why it was refused

    def peer_certificate(self) -> bytes | None:
        """The peer's certificate (DER), once the handshake is complete."""
        return self._tls.getpeercert(binary_form=True)

    def send(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    def recv_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            try:
                data += self._tls.read(n - len(data))
            except ssl.SSLWantReadError:
                self._fill()
            except ssl.SSLZeroReturnError:
                raise EOFError("peer closed the TLS session") from None
        return bytes(data)

    def drained(self) -> bool:
        """Whether nothing beyond what was read has arrived (the peer kept to the protocol)."""
        return self._in.pending == 0 and self._tls.pending() == 0

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(1 << 14)
        if not data:
            raise EOFError("connection closed during the TLS handshake")
        self._in.write(data)

