"""X.509 building blocks: the federation's CA and its member certificates (ECDSA P-256).

Every member certificate names its member three times, consistently: subject CN=<member>,
OU=<federation id>, O=crypten-fl, and the SAN URI ``crypten-fl://<federation id>/<member>``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION = "crypten-fl"
URI_SCHEME = "crypten-fl"
#: certificates are valid from this long before they are issued (clocks of sites differ)
CLOCK_SKEW = timedelta(minutes=5)
#: a federation id: a DNS label (it is the authority of the members' SAN URIs)
FEDERATION_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MEMBER_NAME = re.compile(r"hospital_(?:0|[1-9][0-9]{0,3})|ttp|rendezvous")
_URI = re.compile(rf"{URI_SCHEME}://({FEDERATION_ID.pattern})/({MEMBER_NAME.pattern})")

PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    """A fresh ECDSA P-256 private key from the OS CSPRNG (through OpenSSL)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (protected by its file mode, 0600)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, as lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def validity(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """(not before, not after) of a certificate issued ``now`` for ``days`` days."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    return now - CLOCK_SKEW, now + timedelta(days=days)


def _name(common_name: str, federation_id: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, federation_id),
    ])


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                           "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                           "encipher_only", "decipher_only"), False)
    return x509.KeyUsage(**{**flags, **enabled})


def make_ca(key: PrivateKey, federation_id: str, not_before: datetime,
            not_after: datetime) -> x509.Certificate:
    """The federation's self-signed CA: CA=true, pathlen=0 (it signs members only)."""
    name = _name(f"{ORGANIZATION} CA {federation_id}", federation_id)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def member_uri(federation_id: str, member: str) -> str:
    """The SAN URI naming ``member`` of ``federation_id``."""
    return f"{URI_SCHEME}://{federation_id}/{member}"


def issue_member(ca_key: PrivateKey, ca_cert: x509.Certificate, federation_id: str,
                 member: str, public_key: ec.EllipticCurvePublicKey, not_before: datetime,
                 not_after: datetime) -> x509.Certificate:
    """A member certificate signed by the CA: TLS client and server, digital signatures only."""
    ca_public = ca_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(member, federation_id)).issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(member_uri(federation_id, member))]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if len(values) == 1 else None


def claimed_identity(cert: x509.Certificate) -> tuple[str, str] | None:
    """(federation id, member name) the certificate claims, or None if it claims none.

    Claimed, not proven: check the issuer too. The SAN URI must agree with CN and OU.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    uris = [m.groups() for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if (m := _URI.fullmatch(u))]
    if len(uris) != 1:
        return None
    federation_id, member = uris[0]
    if (_attribute(cert, NameOID.COMMON_NAME) != member
            or _attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) != federation_id):
        return None
    return federation_id, member


def federation_of_ca(cert: x509.Certificate) -> str | None:
    """The federation id a CA certificate is of (its OU), if it is a valid-looking one."""
    unit = _attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)
    return unit if unit and FEDERATION_ID.fullmatch(unit) else None


def is_ca(cert: x509.Certificate) -> bool:
    """True if the certificate's basicConstraints say CA=true."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        return False


def issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """True if ``ca_cert`` is the issuer of ``cert`` and its key made the signature."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def when(moment: datetime) -> str:
    """A certificate time as people read it in a message."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def validity_problem(cert: x509.Certificate, now: datetime | None = None) -> str | None:
    """'expired on …' / 'not valid before …', or None while ``now`` lies in its validity."""
    now = now or datetime.now(UTC)
    if now < cert.not_valid_before_utc:
        return f"not valid before {when(cert.not_valid_before_utc)}"
    if now > cert.not_valid_after_utc:
        return f"expired on {when(cert.not_valid_after_utc)}"
    return None
