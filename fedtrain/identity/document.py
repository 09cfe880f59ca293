"""federation.json: writing it, and reading it back with every field checked.

A listed certificate must hash to its listed fingerprint, be issued by the listed CA and name
the member it is listed as: a federation.json edited by hand (or in transit) is refused.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json
from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity.federation import Federation, Member
from crypten_fl.fedtrain.identity.names import (
    HOSPITAL,
    RENDEZVOUS,
    TTP,
    check_address,
    check_federation_id,
    hospital_name,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

FILE = "federation.json"
FORMAT = "crypten-fl-federation"
FORMAT_VERSION = 1
_TOP = ("format", "format_version", "tool", "tool_version", "federation_id", "revision",
        "created_utc", "revised_utc", "expires_utc", "ca_fingerprint", "ca_certificate",
        "rendezvous", "members")
_MEMBER = ("name", "role", "rank", "fingerprint", "certificate")


def to_document(fed: Federation) -> dict[str, Any]:
    """The JSON object of ``fed`` (field order as written)."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "tool": "crypten-fl", "tool_version": fed.tool_version,
        "federation_id": fed.id, "revision": fed.revision,
        "created_utc": fed.created_utc, "revised_utc": fed.revised_utc,
        "expires_utc": fed.expires_utc,
        "ca_fingerprint": fed.ca_fingerprint, "ca_certificate": fed.ca_certificate_pem,
        "rendezvous": {"address": fed.rendezvous_address, "host": fed.rendezvous_host},
        "members": [{"name": m.name, "role": m.role, "rank": m.rank,
                     "fingerprint": m.fingerprint, "certificate": m.certificate_pem}
                    for m in fed.members],
    }


def write(path: Path, fed: Federation) -> None:
    """Write ``fed`` as federation.json at ``path`` (mode 0644 whatever the umask: public, but
    writable by its owner only)."""
    Path(path).write_text(json.dumps(to_document(fed), indent=2) + "\n")
    Path(path).chmod(0o644)


def read(path: Path) -> Federation:
    """Read and check the federation.json at ``path``; UserError naming it if anything is off."""
    return from_document(read_json(path), path)


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise UserError(f"{where}: field {key!r} has the wrong type")
    return value


def _object(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a JSON object")
    if missing := [k for k in keys if k not in value]:
        raise UserError(f"{where}: missing field {missing[0]!r}")
    if extra := sorted(set(value) - set(keys)):
        raise UserError(f"{where}: unknown field {extra[0]!r}")
    return value


def _certificate(pem: str, where: str) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise UserError(f"{where}: not a PEM certificate") from None
    public = cert.public_key()
    if not (isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"):
        raise UserError(f"{where}: not an ECDSA P-256 certificate")
    return cert


def _timestamp(doc: dict[str, Any], key: str, where: str) -> str:
    text = _get(doc, key, str, where)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{where}: field {key!r} is not an ISO 8601 time") from None
    return text


def _expected_roles(members: list[dict[str, Any]]) -> dict[str, tuple[str, int | None]]:
    hospitals = sum(m["role"] == HOSPITAL for m in members)
    roles: dict[str, tuple[str, int | None]] = {
        hospital_name(k): (HOSPITAL, k) for k in range(hospitals)}
    roles[TTP] = (TTP, hospitals)
    roles[RENDEZVOUS] = (RENDEZVOUS, None)
    return roles


def _member(entry: dict[str, Any], fed_id: str, ca: x509.Certificate,
            roles: dict[str, tuple[str, int | None]], where: str) -> Member:
    name = _get(entry, "name", str, where)
    role, rank = _get(entry, "role", str, where), _get(entry, "rank", (int, type(None)), where)
    if roles.get(name) != (role, rank):
        raise UserError(f"{where}: {name!r} with role {role!r} and rank {rank} does not fit "
                        "the federation (hospital_<k> has rank k, ttp the next, rendezvous none)")
    cert = _certificate(_get(entry, "certificate", str, where), f"{where} ({name})")
    listed = _get(entry, "fingerprint", str, where)
    if listed != certs.fingerprint(cert):
        raise UserError(f"{where} ({name}): fingerprint does not match its certificate")
    if not certs.issued_by(cert, ca) or certs.is_ca(cert):
        raise UserError(f"{where} ({name}): certificate not issued by the federation's CA")
    if certs.claimed_identity(cert) != (fed_id, name):
        raise UserError(f"{where} ({name}): certificate is not {name}'s of federation {fed_id}")
    return Member(name, role, rank, listed, entry["certificate"])


def from_document(doc: Any, source: Path | str) -> Federation:
    """The Federation a parsed federation.json describes, after checking all of it."""
    doc = _object(doc, _TOP, str(source))
    where = str(source)
    if doc["format"] != FORMAT:
        raise UserError(f"{where}: not a crypten-fl federation.json (format {doc['format']!r})")
    if _get(doc, "format_version", int, where) != FORMAT_VERSION:
        raise UserError(f"{where}: format version {doc['format_version']}; this crypten-fl "
                        f"reads version {FORMAT_VERSION}")
    fed_id = check_federation_id(_get(doc, "federation_id", str, where), f"{where}: federation_id")
    revision = _get(doc, "revision", int, where)
    if revision < 1:
        raise UserError(f"{where}: field 'revision' must be at least 1")
    ca = _certificate(_get(doc, "ca_certificate", str, where), f"{where}: ca_certificate")
    if certs.fingerprint(ca) != _get(doc, "ca_fingerprint", str, where):
        raise UserError(f"{where}: ca_fingerprint does not match ca_certificate")
    if not (certs.is_ca(ca) and certs.issued_by(ca, ca) and certs.federation_of_ca(ca) == fed_id):
        raise UserError(f"{where}: ca_certificate is not the CA of federation {fed_id}")
    rendezvous = _object(doc["rendezvous"], ("address", "host"), f"{where}: rendezvous")
    address = _get(rendezvous, "address", (str, type(None)), f"{where}: rendezvous")
    if address is not None:
        check_address(address, f"{where}: rendezvous address")
    # an address comes with a rendezvous member to host the store; without one the store is
    # hosted by the rendezvous member if there is one (the local launcher's), else hospital_0
    hosts = (RENDEZVOUS,) if address is not None else (RENDEZVOUS, hospital_name(0))
    host = rendezvous["host"]
    if host not in hosts:
        raise UserError(f"{where}: rendezvous host must be {' or '.join(map(repr, hosts))} "
                        f"when the address is {'given' if address else 'null'}")
    entries = _get(doc, "members", list, where)
    places = [f"{where}: members[{i}]" for i in range(len(entries))]
    entries = [_object(e, _MEMBER, p) for e, p in zip(entries, places, strict=True)]
    listed = [e["name"] for e in entries]
    if twice := sorted({str(n) for n in listed if listed.count(n) > 1}):
        raise UserError(f"{where}: members: {twice[0]} is listed twice")
    roles = _expected_roles(entries)
    members = tuple(_member(e, fed_id, ca, roles, p) for e, p in zip(entries, places, strict=True))
    names = [m.name for m in members]
    hospitals = [n for n in names if n.startswith(HOSPITAL)]
    expected = [*map(hospital_name, range(len(hospitals))), *([TTP] if TTP in names else []),
                *([RENDEZVOUS] if host == RENDEZVOUS else [])]
    if not hospitals:
        raise UserError(f"{where}: a federation needs at least one hospital")
    if names != expected:
        raise UserError(f"{where}: members must be {', '.join(expected)} in this order "
                        f"(found {', '.join(names)})")
    return Federation(
        id=fed_id, members=members, rendezvous_address=address, rendezvous_host=host,
        ca_fingerprint=doc["ca_fingerprint"], ca_certificate_pem=doc["ca_certificate"],
        revision=revision, created_utc=_timestamp(doc, "created_utc", where),
        revised_utc=_timestamp(doc, "revised_utc", where),
        expires_utc=_timestamp(doc, "expires_utc", where),
        tool_version=_get(doc, "tool_version", str, where))
