"""A member's kit: load it with everything a site could get wrong checked, sign, speak TLS.

A kit directory holds member.key (ECDSA P-256, PKCS#8 PEM, mode 0600), member.crt, ca.crt and
federation.json; it is all a site needs besides its data and the run configuration.
"""

from __future__ import annotations

import ssl
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity.federation import (
    SIGNATURE_ALGORITHM,
    SIGNATURE_CONTEXT,
    Federation,
    Member,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY, CERT, CA, FEDERATION = "member.key", "member.crt", "ca.crt", "federation.json"
FILES = (KEY, CERT, CA, FEDERATION)


@dataclass(frozen=True)
class Kit:
    """A loaded, checked kit: who this site is in which federation, and its key."""

    path: Path
    member: Member
    federation: Federation
    cert_path: Path
    key_path: Path
    ca_path: Path
    _key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        """This member's name (hospital_<k>, ttp or rendezvous)."""
        return self.member.name

    def sign(self, data: bytes) -> bytes:
        """ECDSA-SHA256 signature (DER) of ``data`` with the member key.

        Signed under a fixed crypten-fl context prefix (see :data:`SIGNATURE_CONTEXT`), so put
        a purpose label and the session id into ``data``; peers check it with
        :meth:`Federation.verify`.
        """
        return self._key.sign(SIGNATURE_CONTEXT + data, SIGNATURE_ALGORITHM)

    def ssl_context(self, server: bool) -> ssl.SSLContext:
        """A TLS 1.3-only context presenting this member's certificate and requiring the peer's,
        chained to the federation's CA. No host name check: identify the peer with
        :meth:`Federation.identify` on ``getpeercert(binary_form=True)``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        context.load_cert_chain(self.cert_path, self.key_path)
        context.load_verify_locations(cafile=self.ca_path)
        return context


def read_certificate(path: Path) -> x509.Certificate:
    """The PEM certificate in file ``path``; UserError naming it if it is not one."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise UserError(f"{path}: not a PEM certificate") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None


def check_private_mode(path: Path, what: str = "the private key") -> None:
    """UserError if users other than the owner may access ``path`` (a key file, or the
    directory holding ``what``)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        wanted = "0700" if path.is_dir() else "0600"
        raise UserError(f"{path}: mode {mode:04o} lets other users read {what} "
                        f"(make it {wanted}: chmod {wanted[1:]} {path})")


def read_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The unencrypted ECDSA P-256 key in PEM file ``path``, after checking its mode."""
    check_private_mode(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise UserError(f"{path}: not an unencrypted PEM private key") from None
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"):
        raise UserError(f"{path}: not an ECDSA P-256 key")
    return key


def same_key(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bool:
    """True if ``cert`` certifies the public half of ``key``."""
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*der) == cert.public_key().public_bytes(*der)


def load_kit(path: Path, now: datetime | None = None) -> Kit:
    """Load the kit in directory ``path``; one UserError naming the file for any problem."""
    path = Path(path)
    if not path.is_dir():
        what = "a file" if path.exists() else "not found"
        raise UserError(f"{path}: not a kit directory ({what}; a kit holds {', '.join(FILES)})")
    key_path, cert_path, ca_path, fed_path = (path / name for name in FILES)
    for file in (key_path, cert_path, ca_path, fed_path):
        if not file.is_file():
            raise UserError(f"{file}: file not found (a kit holds {', '.join(FILES)})")
    check_private_mode(key_path)
    federation = Federation.load(fed_path)
    cert = read_certificate(cert_path)
    claimed = certs.claimed_identity(cert)
    if claimed is None:
        raise UserError(f"{cert_path}: names no crypten-fl member")
    fed_id, name = claimed
    if fed_id != federation.id:
        raise UserError(f"{cert_path}: certificate of federation {fed_id}, but {fed_path} is "
                        f"of federation {federation.id} (files of two kits?)")
    ca = read_certificate(ca_path)
    if (found := certs.fingerprint(ca)) != federation.ca_fingerprint:
        raise UserError(f"{ca_path}: not the CA that {fed_path} lists (fingerprint "
                        f"{found[:16]}…, expected {federation.ca_fingerprint[:16]}…)")
    if not certs.issued_by(cert, ca) or certs.is_ca(cert):
        raise UserError(f"{cert_path}: not signed by {ca_path}")
    problem = certs.validity_problem(cert, now)
    if problem is not None:
        raise UserError(f"{cert_path}: certificate {problem}")
    key = read_private_key(key_path)
    if not same_key(key, cert):
        raise UserError(f"{key_path}: does not match {cert_path} (key of another member?)")
    member = federation.find(name)
    if member is None:
        raise UserError(f"{cert_path}: {name} is not a member of federation {fed_id} ({fed_path})")
    if member.fingerprint != certs.fingerprint(cert):
        raise UserError(f"{cert_path}: fingerprint {certs.fingerprint(cert)[:16]}… is not the one "
                        f"{fed_path} lists for {name} ({member.fingerprint[:16]}…; rotated? "
                        "install the new kit)")
    return Kit(path, member, federation, cert_path, key_path, ca_path, key)
