"""Kits for the identity tests, and the deliberately bad certificates that attack them.

Bad certificates are built here, not in the library: an expired or not-yet-valid certificate
signed by the real CA, a self-signed one with the right names, one from a look-alike CA (same
name, other key), and the valid certificate of another federation with the same member name.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity import provision
from crypten_fl.fedtrain.identity.kit import read_certificate, read_private_key
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


def kits(root: Path, hospitals: int = 3, *, ttp: bool = True, rendezvous: str | None = None,
         name: str | None = "fed-test", out: str = "kits") -> Path:
    """A provisioned federation under ``root/out`` (returned)."""
    provision(root / out, hospitals, ttp=ttp, rendezvous=rendezvous, name=name)
    return root / out


def operator_ca(kits_dir: Path) -> tuple[certs.PrivateKey, x509.Certificate]:
    """The CA key and certificate of a federation, from its KITS/ca/."""
    ca = kits_dir / "ca"
    return read_private_key(ca / "ca.key"), read_certificate(ca / "ca.crt")


def der(cert: x509.Certificate) -> bytes:
    """The certificate as DER (what TLS's getpeercert(binary_form=True) gives)."""
    return cert.public_bytes(serialization.Encoding.DER)


def kit_cert(kit: Path) -> x509.Certificate:
    """The member certificate of the kit in ``kit``."""
    return read_certificate(kit / "member.crt")


def issued(kits_dir: Path, member: str, not_before: datetime, not_after: datetime,
           federation_id: str = "fed-test") -> tuple[certs.PrivateKey, x509.Certificate]:
    """A fresh key and a certificate for ``member`` from the real CA, with the given validity."""
    ca_key, ca_cert = operator_ca(kits_dir)
    key = certs.new_key()
    return key, certs.issue_member(ca_key, ca_cert, federation_id, member, key.public_key(),
                                   not_before, not_after)


def expired(kits_dir: Path, member: str) -> tuple[certs.PrivateKey, x509.Certificate]:
    """``member``'s certificate from the real CA that expired yesterday."""
    return issued(kits_dir, member, NOW - 10 * DAY, NOW - DAY)


def not_yet_valid(kits_dir: Path, member: str) -> tuple[certs.PrivateKey, x509.Certificate]:
    """``member``'s certificate from the real CA, valid from tomorrow."""
    return issued(kits_dir, member, NOW + DAY, NOW + 10 * DAY)


def self_signed(federation_id: str, member: str) -> tuple[certs.PrivateKey, x509.Certificate]:
    """A self-signed certificate with all of ``member``'s names (subject, SAN) and extensions."""
    key = certs.new_key()
    cert = certs.issue_member(key, _named(key, member, federation_id), federation_id, member,
                              key.public_key(), NOW - DAY, NOW + DAY)
    return key, cert


def _named(key: certs.PrivateKey, member: str, federation_id: str) -> x509.Certificate:
    """A stand-in issuer whose subject is the member's own name (so the result is self-signed)."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, member),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, certs.ORGANIZATION),
                      x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME, federation_id)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .sign(key, hashes.SHA256()))


def lookalike(federation_id: str, member: str) -> tuple[certs.PrivateKey, x509.Certificate]:
    """``member``'s certificate from a CA with the real CA's name but another key."""
    ca_key = certs.new_key()
    ca_cert = certs.make_ca(ca_key, federation_id, NOW - DAY, NOW + DAY)
    key = certs.new_key()
    return key, certs.issue_member(ca_key, ca_cert, federation_id, member, key.public_key(),
                                   NOW - DAY, NOW + DAY)


def install(kit: Path, key: certs.PrivateKey | None, cert: x509.Certificate | None) -> None:
    """Replace the kit's member.key and/or member.crt (the key keeps mode 0600)."""
    if key is not None:
        (kit / "member.key").write_bytes(certs.key_pem(key))
        os.chmod(kit / "member.key", 0o600)
    if cert is not None:
        (kit / "member.crt").write_bytes(certs.cert_pem(cert))


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Mode and sha256 of every entry below ``root`` (directories: mode and "dir")."""
    state = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[str(path.relative_to(root))] = (path.stat().st_mode & 0o7777, digest)
    return state
