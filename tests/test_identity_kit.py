"""load_kit: each thing a site could get wrong is one error line naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity import Federation, load_kit, rotate
from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity.kit import read_certificate
from helpers.identities import (
    DAY,
    NOW,
    expired,
    install,
    issued,
    kit_cert,
    kits,
    lookalike,
    not_yet_valid,
    self_signed,
)

FILES = "member.key, member.crt, ca.crt, federation.json"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kit")
    kits(root, 3, ttp=True)
    kits(root, 2, ttp=False, name="fed-other", out="other")
    rotate(root / "kits", "hospital_2", root / "rotated")
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "root", symlinks=True))


def _error(kit: Path) -> str:
    with pytest.raises(UserError) as err:
        load_kit(kit)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_genuine_kit_loads(root: Path) -> None:
    kit = load_kit(root / "kits" / "hospital_1")
    assert kit.path == root / "kits" / "hospital_1" and kit.name == "hospital_1"
    assert (kit.member.name, kit.member.role, kit.member.rank) == ("hospital_1", "hospital", 1)
    assert kit.member.fingerprint == certs.fingerprint(kit_cert(kit.path))
    assert kit.federation == Federation.load(root / "kits" / "ca" / "federation.json")
    assert (kit.cert_path, kit.key_path, kit.ca_path) == (
        kit.path / "member.crt", kit.path / "member.key", kit.path / "ca.crt")
    assert load_kit(root / "kits" / "ttp").member.rank == 3


@pytest.mark.parametrize("name", ["member.key", "member.crt", "ca.crt", "federation.json"])
def test_missing_file(root: Path, name: str) -> None:
    kit = root / "kits" / "hospital_0"
    (kit / name).unlink()
    assert _error(kit) == f"{kit / name}: file not found (a kit holds {FILES})"


def test_missing_kit_directory(root: Path) -> None:
    kit = root / "kits" / "hospital_7"
    assert _error(kit) == f"{kit}: not a kit directory (not found; a kit holds {FILES})"
    assert _error(kit.parent / "ca" / "ca.crt").endswith("not a kit directory (a file; "
                                                         f"a kit holds {FILES})")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700 | 0o007])
def test_key_readable_by_others_is_refused(root: Path, mode: int) -> None:
    key = root / "kits" / "hospital_0" / "member.key"
    key.chmod(mode)
    assert _error(key.parent) == (f"{key}: mode {mode:04o} lets other users read the private key "
                                  f"(make it 0600: chmod 600 {key})")


def test_key_readable_by_its_owner_only_is_fine(root: Path) -> None:
    (root / "kits" / "hospital_0" / "member.key").chmod(0o400)
    assert load_kit(root / "kits" / "hospital_0").name == "hospital_0"


def test_key_of_another_member(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    shutil.copy(root / "kits" / "hospital_2" / "member.key", kit / "member.key")
    assert _error(kit) == (f"{kit}/member.key: does not match {kit}/member.crt "
                           "(key of another member?)")


def test_key_that_is_no_key(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    (kit / "member.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
    assert _error(kit) == f"{kit}/member.key: not an unencrypted PEM private key"


def test_certificate_that_is_no_certificate(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    (kit / "member.crt").write_bytes(b"\x00\x01garbage")
    assert _error(kit) == f"{kit}/member.crt: not a PEM certificate"


@pytest.mark.parametrize("make", [self_signed, lookalike], ids=["self-signed", "lookalike-ca"])
def test_certificate_not_signed_by_the_kits_ca(root: Path, make) -> None:
    kit = root / "kits" / "hospital_1"
    install(kit, *make("fed-test", "hospital_1"))
    assert _error(kit) == f"{kit}/member.crt: not signed by {kit}/ca.crt"


@pytest.mark.parametrize("make, problem", [
    (expired, lambda c: f"expired on {certs.when(c.not_valid_after_utc)}"),
    (not_yet_valid, lambda c: f"not valid before {certs.when(c.not_valid_before_utc)}"),
], ids=["expired", "not-yet-valid"])
def test_certificate_outside_its_validity(root: Path, make, problem) -> None:
    kit = root / "kits" / "hospital_1"
    key, cert = make(root / "kits", "hospital_1")
    install(kit, key, cert)
    assert _error(kit) == f"{kit}/member.crt: certificate {problem(cert)}"


def test_certificate_whose_fingerprint_is_not_listed(root: Path) -> None:
    """The old kit of a rotated member, next to the federation.json of the new revision."""
    kit = root / "kits" / "hospital_2"
    shutil.copy(root / "rotated" / "hospital_2" / "federation.json", kit / "federation.json")
    old = certs.fingerprint(kit_cert(kit))
    new = certs.fingerprint(kit_cert(root / "rotated" / "hospital_2"))
    assert _error(kit) == (f"{kit}/member.crt: fingerprint {old[:16]}… is not the one "
                           f"{kit}/federation.json lists for hospital_2 ({new[:16]}…; rotated? "
                           "install the new kit)")


def test_a_new_certificate_issued_by_the_ca_but_not_listed(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    install(kit, *issued(root / "kits", "hospital_1", NOW - DAY, NOW + DAY))
    assert "is not the one" in _error(kit)


def test_certificate_for_a_name_that_is_not_a_member(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    install(kit, *issued(root / "kits", "hospital_9", NOW - DAY, NOW + DAY))
    assert _error(kit) == (f"{kit}/member.crt: hospital_9 is not a member of federation "
                           f"fed-test ({kit}/federation.json)")


def test_federation_json_of_another_federation(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    shutil.copy(root / "other" / "hospital_1" / "federation.json", kit / "federation.json")
    assert _error(kit) == (f"{kit}/member.crt: certificate of federation fed-test, but "
                           f"{kit}/federation.json is of federation fed-other (files of two "
                           "kits?)")


def test_ca_certificate_of_another_federation(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    shutil.copy(root / "other" / "hospital_1" / "ca.crt", kit / "ca.crt")
    listed = Federation.load(kit).ca_fingerprint
    found = certs.fingerprint(read_certificate(kit / "ca.crt"))
    assert _error(kit) == (f"{kit}/ca.crt: not the CA that {kit}/federation.json lists "
                           f"(fingerprint {found[:16]}…, expected {listed[:16]}…)")


def test_tampered_federation_json(root: Path) -> None:
    kit = root / "kits" / "hospital_1"
    path = kit / "federation.json"
    path.write_text(path.read_text().replace('"rank": 1', '"rank": 0', 1))
    assert _error(kit).startswith(f"{path}: members[1]: 'hospital_1' with role 'hospital' and "
                                  "rank 0 does not fit the federation")


def test_kit_holding_another_members_key_and_certificate_is_that_member(root: Path) -> None:
    """A site given the wrong kit directory is told who it is, not silently someone else."""
    kit = root / "kits" / "hospital_1"
    for name in ("member.key", "member.crt"):
        shutil.copy(root / "kits" / "hospital_2" / name, kit / name)
    assert load_kit(kit).name == "hospital_2"
