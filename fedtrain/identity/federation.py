"""The federation: who its members are, and telling a peer's certificate or signature apart.

The same federation.json travels in every kit; see :mod:`fedtrain.identity.document`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity.errors import IdentityError
from crypten_fl.fedtrain.identity.names import HOSPITAL, RENDEZVOUS, TTP, hospital_name
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

#: prefixed to everything a member key signs outside TLS, so that no signature made through
#: :meth:`Kit.sign` can stand for a TLS 1.3 CertificateVerify (or anything else) of that key
SIGNATURE_CONTEXT = b"crypten-fl signature v1\x00"
SIGNATURE_ALGORITHM = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class Member:
    """One member of a federation, as federation.json lists it."""

    name: str
    role: str  # hospital | ttp | rendezvous
    rank: int | None  # CrypTen rank; None for the rendezvous host
    fingerprint: str  # sha256 hex of the certificate's DER
    certificate_pem: str

    @cached_property
    def certificate(self) -> x509.Certificate:
        """The member's certificate, parsed."""
        return x509.load_pem_x509_certificate(self.certificate_pem.encode())


@dataclass(frozen=True)
class Federation:
    """A federation's members, CA and rendezvous, loaded from (and written as) federation.json."""

    id: str
    members: tuple[Member, ...]
    rendezvous_address: str | None  # HOST:PORT of the store, or None: given at run time
    rendezvous_host: str  # member hosting the store: "rendezvous" or "hospital_0"
    ca_fingerprint: str
    ca_certificate_pem: str
    revision: int = 1  # 1 when provisioned, +1 per rotation
    created_utc: str = ""
    revised_utc: str = ""
    expires_utc: str = ""
    tool_version: str = ""

    @classmethod
    def load(cls, path: Path) -> Federation:
        """Read and check a federation.json (or the one in kit directory ``path``)."""
        from crypten_fl.fedtrain.identity.document import FILE, read

        path = Path(path)
        return read(path / FILE if path.is_dir() else path)

    @cached_property
    def ca_certificate(self) -> x509.Certificate:
        """The federation's CA certificate, parsed."""
        return x509.load_pem_x509_certificate(self.ca_certificate_pem.encode())

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical federation.json: peers holding the same revision agree."""
        from crypten_fl.fedtrain.identity.document import to_document

        canonical = json.dumps(to_document(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def names(self) -> list[str]:
        """Member names, hospitals first."""
        return [m.name for m in self.members]

    def find(self, name: str) -> Member | None:
        """The member called ``name``, or None."""
        return next((m for m in self.members if m.name == name), None)

    def member(self, name: str) -> Member:
        """The member called ``name``; UserError if there is none."""
        if (found := self.find(name)) is not None:
            return found
        raise UserError(f"federation {self.id} has no member {name!r} "
                        f"(members: {', '.join(self.names)})")

    def hospitals(self) -> list[Member]:
        """The hospitals, by rank."""
        return [m for m in self.members if m.role == HOSPITAL]

    def hospital(self, rank: int) -> Member:
        """The hospital of CrypTen rank ``rank``; UserError if there is none."""
        hospitals = self.hospitals()
        if not 0 <= rank < len(hospitals):
            raise UserError(f"federation {self.id} has no {hospital_name(rank)} "
                            f"(it has {len(hospitals)} hospitals, ranks 0..{len(hospitals) - 1})")
        return hospitals[rank]

    @property
    def has_ttp(self) -> bool:
        """True if the federation has a TTP (the dealer of Beaver triples)."""
        return any(m.role == TTP for m in self.members)

    def ttp(self) -> Member:
        """The TTP (rank = number of hospitals); UserError if provisioned without --ttp."""
        if not self.has_ttp:
            raise UserError(f"federation {self.id} has no ttp member (provision it with --ttp)")
        return self.member(TTP)

    @property
    def world_size(self) -> int:
        """Number of CrypTen parties: the hospitals and the TTP."""
        return sum(m.rank is not None for m in self.members)

    def at_rank(self, rank: int) -> Member:
        """The party of CrypTen rank ``rank`` (a hospital, or the TTP)."""
        if (found := next((m for m in self.members if m.rank == rank), None)) is not None:
            return found
        raise UserError(f"federation {self.id} has no party of rank {rank} "
                        f"(world size {self.world_size})")

    def store_host(self) -> Member:
        """The member that hosts the rendezvous store."""
        return self.member(self.rendezvous_host)

    @property
    def has_rendezvous_member(self) -> bool:
        """True if a member of its own hosts the rendezvous store (provisioned --rendezvous)."""
        return self.rendezvous_host == RENDEZVOUS

    def identify(self, cert_der: bytes, now: datetime | None = None) -> Member:
        """The member a peer's certificate belongs to; IdentityError with a short reason if none.

        TLS has verified the chain already; this checks again that this federation's CA issued
        it, that it is valid ``now`` and that it is the certificate federation.json lists.
        """
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            raise IdentityError("not an X.509 certificate") from None
        claimed = certs.claimed_identity(cert)
        if claimed is None:
            raise IdentityError("certificate names no crypten-fl member")
        federation_id, name = claimed
        if federation_id != self.id:
            raise IdentityError(f"certificate of another federation ({federation_id})")
        if not certs.issued_by(cert, self.ca_certificate) or certs.is_ca(cert):
            raise IdentityError("certificate not issued by this federation's CA")
        problem = certs.validity_problem(cert, now)
        if problem is not None:
            raise IdentityError(f"certificate {problem}")
        listed = self.find(name)
        if listed is None:
            raise IdentityError(f"not a member of federation {self.id}")
        if listed.fingerprint != certs.fingerprint(cert):
            raise IdentityError(f"certificate of {name} is no longer listed (rotated?)")
        return listed

    def authenticate(self, cert_der: bytes, expected: str, now: datetime | None = None) -> Member:
        """:meth:`identify`, and refuse a member other than ``expected``."""
        member = self.identify(cert_der, now)
        if member.name != expected:
            raise IdentityError(f"certificate of {member.name}, expected {expected}")
        return member

    def verify(self, member_name: str, data: bytes, signature: bytes) -> None:
        """Check that ``member_name`` signed ``data`` (see :meth:`Kit.sign`); else IdentityError."""
        member = self.find(member_name)
        if member is None:
            raise IdentityError(f"not a member of federation {self.id}")
        public = member.certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)  # checked when loaded
        try:
            public.verify(signature, SIGNATURE_CONTEXT + data, SIGNATURE_ALGORITHM)
        except (InvalidSignature, ValueError):
            raise IdentityError(f"signature of {member_name} does not verify") from None

    def to_json(self) -> dict[str, Any]:
        """The federation.json document."""
        from crypten_fl.fedtrain.identity.document import to_document

        return to_document(self)
