"""Writing kits: a new federation, a rotated member, or a throw-away federation for one run.

KITS/ca/ (the CA's key and certificate, and the operator's federation.json) stays with the
operator; KITS/<member>/ is that member's kit. Keys come from the OS CSPRNG: there is no seed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from crypten_fl.common import __version__
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import atomic_output_dir
from crypten_fl.common.pathguard import Reads, check_disjoint
from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity import document, names
from crypten_fl.fedtrain.identity.federation import Federation, Member
from crypten_fl.fedtrain.identity.kit import (
    CA,
    CERT,
    FEDERATION,
    KEY,
    check_private_mode,
    load_kit,
    read_certificate,
    read_private_key,
    same_key,
)
from cryptography import x509

CA_DIR, CA_KEY = "ca", "ca.key"
#: validity of a throw-away federation (its CA key is never written, so nothing can renew it)
EPHEMERAL_DAYS = 30


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _member(ca_key: certs.PrivateKey, ca_cert: x509.Certificate, fed_id: str, name: str,
            role: str, rank: int | None, not_before: datetime,
            not_after: datetime) -> tuple[Member, bytes]:
    key = certs.new_key()
    cert = certs.issue_member(ca_key, ca_cert, fed_id, name, key.public_key(), not_before,
                              not_after)
    pem = certs.cert_pem(cert).decode()
    return Member(name, role, rank, certs.fingerprint(cert), pem), certs.key_pem(key)


def _new_federation(fed_id: str, hospitals: int, ttp: bool, address: str | None,
                    days: int, store_member: bool | None = None
                    ) -> tuple[bytes, Federation, dict[str, bytes]]:
    """(CA key PEM, federation, member key PEM by name) of a freshly issued federation.

    ``store_member``: issue a ``rendezvous`` member to host the store (default: when there is
    an ``address``)."""
    store_member = address is not None if store_member is None else store_member
    not_before, not_after = certs.validity(days)
    ca_key = certs.new_key()
    ca_cert = certs.make_ca(ca_key, fed_id, not_before, not_after)
    issued = [_member(ca_key, ca_cert, fed_id, name, role, rank, not_before, not_after)
              for name, role, rank in names.member_plan(hospitals, ttp, store_member)]
    created = _timestamp(not_before + certs.CLOCK_SKEW)
    federation = Federation(
        id=fed_id, members=tuple(m for m, _ in issued), rendezvous_address=address,
        rendezvous_host=names.RENDEZVOUS if store_member else names.hospital_name(0),
        ca_fingerprint=certs.fingerprint(ca_cert),
        ca_certificate_pem=certs.cert_pem(ca_cert).decode(),
        revision=1, created_utc=created, revised_utc=created,
        expires_utc=_timestamp(not_after), tool_version=__version__)
    return certs.key_pem(ca_key), federation, {m.name: key for m, key in issued}


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _write_public(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o644)  # whatever the umask: a certificate only its owner may replace


def _write_kits(root: Path, federation: Federation, keys: dict[str, bytes]) -> None:
    """One kit directory per member under ``root``."""
    for member in federation.members:
        kit = _private_dir(root / member.name)
        _write_private(kit / KEY, keys[member.name])
        _write_public(kit / CERT, member.certificate_pem)
        _write_public(kit / CA, federation.ca_certificate_pem)
        document.write(kit / FEDERATION, federation)


def _write_ca(root: Path, ca_key: bytes, federation: Federation) -> None:
    ca = _private_dir(root / CA_DIR)
    _write_private(ca / CA_KEY, ca_key)
    _write_public(ca / CA, federation.ca_certificate_pem)
    document.write(ca / FEDERATION, federation)


def _write_federation(out: Path, ca_key: bytes, federation: Federation,
                      keys: dict[str, bytes], reads: Reads | None = None) -> None:
    """KITS/ca/ and every kit, written to a private temporary sibling renamed to ``out``."""
    from crypten_fl.common.writing import write_errors  # imports polars: only when writing

    with write_errors(out), atomic_output_dir(out, reads=reads, command="provision") as tmp:
        tmp.chmod(0o700)
        _write_ca(tmp, ca_key, federation)
        _write_kits(tmp, federation, keys)


def _refuse_existing(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise UserError(f"--out {out}: already exists; provisioning never overwrites kits "
                        "(give a new directory)")


def provision(out: Path, hospitals: int, *, ttp: bool, rendezvous: str | None, days: int = 365,
              name: str | None = None) -> Federation:
    """Create a federation in the new directory ``out``: KITS/ca/ and one kit per member."""
    out = Path(out)
    names.check_hospitals(hospitals)
    names.check_days(days)
    address = None if rendezvous is None else names.check_address(rendezvous)
    fed_id = names.new_federation_id() if name is None else names.check_federation_id(name)
    _refuse_existing(out)
    ca_key, federation, keys = _new_federation(fed_id, hospitals, ttp, address, days)
    _write_federation(out, ca_key, federation, keys)
    return federation


def _operator_ca(source: Path) -> tuple[certs.PrivateKey, x509.Certificate, Federation]:
    """(CA key, CA certificate, federation) of the operator's KITS/ca/, all checked."""
    ca_dir = source / CA_DIR
    for file in (ca_dir / CA_KEY, ca_dir / CA, ca_dir / FEDERATION):
        if not file.is_file():
            raise UserError(f"{file}: file not found (--from needs the KITS directory written by "
                            "`crypten-fl provision`, with its ca/)")
    ca_key = read_private_key(ca_dir / CA_KEY)
    ca_cert = read_certificate(ca_dir / CA)
    federation = Federation.load(ca_dir / FEDERATION)
    if certs.fingerprint(ca_cert) != federation.ca_fingerprint:
        raise UserError(f"{ca_dir / CA}: not the CA that {ca_dir / FEDERATION} lists")
    if not same_key(ca_key, ca_cert):
        raise UserError(f"{ca_dir / CA_KEY}: does not match {ca_dir / CA}")
    return ca_key, ca_cert, federation


def _copied_key(source: Path, member: Member) -> bytes:
    kit = load_kit(source / member.name)
    if kit.member.fingerprint != member.fingerprint:
        raise UserError(f"{kit.cert_path}: not the certificate {source / CA_DIR / FEDERATION} "
                        f"lists for {member.name}")
    return kit.key_path.read_bytes()


def rotate(source: Path, member: str, out: Path) -> Federation:
    """Issue ``member`` a new key and certificate with the CA of ``source``; write every kit,
    each with the new federation.json, to the new directory ``out``. ``source`` is only read."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise UserError(f"--from {source}: not a directory")
    check_disjoint(out, "--out", {"--from": [source]})  # rotation never changes KITS
    ca_key, ca_cert, old = _operator_ca(source)
    if member not in old.names:
        raise UserError(f"--rotate {member}: federation {old.id} has no such member "
                        f"(members: {', '.join(old.names)})")
    _refuse_existing(out)
    problem = certs.validity_problem(ca_cert)
    if problem is not None:
        raise UserError(f"{source / CA_DIR / CA}: the federation's CA {problem}; "
                        "provision a new federation")
    keys = {m.name: _copied_key(source, m) for m in old.members if m.name != member}
    now = datetime.now(UTC).replace(microsecond=0)
    target = old.member(member)
    new, keys[member] = _member(ca_key, ca_cert, old.id, member, target.role, target.rank,
                                now - certs.CLOCK_SKEW, ca_cert.not_valid_after_utc)
    federation = dataclasses.replace(
        old, members=tuple(new if m.name == member else m for m in old.members),
        revision=old.revision + 1, revised_utc=_timestamp(now), tool_version=__version__)
    _write_federation(out, certs.key_pem(ca_key), federation, keys, {"--from": [source]})
    return federation


def provision_ephemeral(directory: Path, hospitals: int, *, ttp: bool) -> Path:
    """A throw-away federation for one run on one machine, in ``directory``/kits (returned).

    ``directory`` must exist and be private (no access for group or others). No CA key is
    written: nobody can issue another member of this federation. Its ``rendezvous`` member is
    the launcher, which hosts the store on a port chosen at launch (so federation.json names no
    address).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    check_private_mode(directory, "the run's keys")
    names.check_hospitals(hospitals)
    _, federation, keys = _new_federation(names.new_federation_id(), hospitals, ttp, None,
                                          EPHEMERAL_DAYS, store_member=True)
    kits = directory / "kits"
    if kits.exists():
        raise UserError(f"{kits}: already exists")
    try:
        _write_kits(_private_dir(kits), federation, keys)
    except OSError as err:
        shutil.rmtree(kits, ignore_errors=True)
        raise UserError(f"{directory}: cannot write the run's kits ({err.strerror or err})"
                        ) from err
    return kits
