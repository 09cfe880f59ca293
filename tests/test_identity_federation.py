"""Federation.identify / authenticate / verify against the certificates and signatures an
attacker would present, and the member lookups the transport uses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity import Federation, IdentityError, load_kit, rotate
from crypten_fl.fedtrain.identity import certificates as certs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from helpers.identities import (
    NOW,
    der,
    expired,
    issued,
    kit_cert,
    kits,
    lookalike,
    not_yet_valid,
    operator_ca,
    self_signed,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("federation")
    kits(root, 3, ttp=True)
    kits(root, 3, ttp=True, out="other")  # another federation, same id and member names
    kits(root, 2, ttp=False, name="fed-elsewhere", out="elsewhere")
    rotate(root / "kits", "hospital_2", root / "rotated")
    return root


@pytest.fixture(scope="module")
def fed(root: Path) -> Federation:
    return Federation.load(root / "kits" / "ca" / "federation.json")


def _reason(fed: Federation, cert_der: bytes) -> str:
    with pytest.raises(IdentityError) as err:
        fed.identify(cert_der)
    assert str(err.value) == err.value.reason
    return err.value.reason


def test_lookups(fed: Federation) -> None:
    assert fed.id == "fed-test" and fed.names == [
        "hospital_0", "hospital_1", "hospital_2", "ttp"]
    assert [m.rank for m in fed.hospitals()] == [0, 1, 2]
    assert fed.hospital(1).name == "hospital_1" and fed.hospital(1).role == "hospital"
    assert fed.ttp().rank == 3 and fed.ttp().role == "ttp" and fed.has_ttp
    assert fed.world_size == 4 and fed.at_rank(3).name == "ttp"
    assert fed.store_host().name == "hospital_0" and fed.rendezvous_address is None
    assert not fed.has_rendezvous_member and fed.find("rendezvous") is None


@pytest.mark.parametrize("call, message", [
    (lambda f: f.member("hospital_7"), "federation fed-test has no member 'hospital_7' "
     "(members: hospital_0, hospital_1, hospital_2, ttp)"),
    (lambda f: f.hospital(3), "federation fed-test has no hospital_3 (it has 3 hospitals, "
     "ranks 0..2)"),
    (lambda f: f.at_rank(4), "federation fed-test has no party of rank 4 (world size 4)"),
])
def test_lookups_of_absent_members_are_user_errors(fed: Federation, call, message: str) -> None:
    with pytest.raises(UserError) as err:
        call(fed)
    assert str(err.value) == message


def test_ttp_of_a_federation_without_one(root: Path) -> None:
    fed = Federation.load(root / "elsewhere" / "hospital_0")
    with pytest.raises(UserError, match=r"^federation fed-elsewhere has no ttp member "
                                        r"\(provision it with --ttp\)$"):
        fed.ttp()


@pytest.mark.parametrize("member", ["hospital_0", "hospital_1", "hospital_2", "ttp"])
def test_identify_names_the_member_of_a_genuine_certificate(root: Path, fed: Federation,
                                                            member: str) -> None:
    got = fed.identify(der(kit_cert(root / "kits" / member)))
    assert got == fed.member(member)


def test_the_certificate_of_another_hospital_identifies_that_hospital(root: Path,
                                                                      fed: Federation) -> None:
    """Expecting hospital_1 and shown hospital_2's certificate: identify says hospital_2."""
    cert = der(kit_cert(root / "kits" / "hospital_2"))
    assert fed.identify(cert).name == "hospital_2"
    with pytest.raises(IdentityError) as err:
        fed.authenticate(cert, "hospital_1")
    assert err.value.reason == "certificate of hospital_2, expected hospital_1"
    assert fed.authenticate(cert, "hospital_2").name == "hospital_2"


def test_expired_certificate(root: Path, fed: Federation) -> None:
    _, cert = expired(root / "kits", "hospital_1")
    when = certs.when(cert.not_valid_after_utc)
    assert _reason(fed, der(cert)) == f"certificate expired on {when}"


def test_not_yet_valid_certificate(root: Path, fed: Federation) -> None:
    _, cert = not_yet_valid(root / "kits", "hospital_1")
    when = certs.when(cert.not_valid_before_utc)
    assert _reason(fed, der(cert)) == f"certificate not valid before {when}"


def test_genuine_certificate_checked_at_a_later_time(root: Path, fed: Federation) -> None:
    cert = kit_cert(root / "kits" / "hospital_0")
    later = cert.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(IdentityError) as err:
        fed.identify(der(cert), now=later)
    assert err.value.reason == f"certificate expired on {certs.when(cert.not_valid_after_utc)}"


def test_self_signed_certificate_with_the_right_names(fed: Federation) -> None:
    _, cert = self_signed("fed-test", "hospital_1")
    assert certs.claimed_identity(cert) == ("fed-test", "hospital_1")
    assert _reason(fed, der(cert)) == "certificate not issued by this federation's CA"


def test_certificate_of_a_lookalike_ca(fed: Federation) -> None:
    _, cert = lookalike("fed-test", "hospital_1")
    assert cert.issuer == fed.ca_certificate.subject  # same issuer name, other key
    assert _reason(fed, der(cert)) == "certificate not issued by this federation's CA"


def test_valid_certificate_of_another_federation_with_the_same_id_and_name(
        root: Path, fed: Federation) -> None:
    assert _reason(fed, der(kit_cert(root / "other" / "hospital_1"))) == (
        "certificate not issued by this federation's CA")


def test_valid_certificate_of_another_federation(root: Path, fed: Federation) -> None:
    assert _reason(fed, der(kit_cert(root / "elsewhere" / "hospital_1"))) == (
        "certificate of another federation (fed-elsewhere)")


def test_certificate_from_the_ca_for_a_name_that_is_not_a_member(root: Path,
                                                                 fed: Federation) -> None:
    _, cert = issued(root / "kits", "hospital_9", NOW - timedelta(days=1),
                     NOW + timedelta(days=1))
    assert _reason(fed, der(cert)) == "not a member of federation fed-test"


def test_rotated_away_certificate(root: Path) -> None:
    new = Federation.load(root / "rotated" / "hospital_0")
    old_cert = der(kit_cert(root / "kits" / "hospital_2"))
    assert _reason(new, old_cert) == "certificate of hospital_2 is no longer listed (rotated?)"
    assert new.identify(der(kit_cert(root / "rotated" / "hospital_2"))).name == "hospital_2"
    assert new.identify(der(kit_cert(root / "kits" / "hospital_1"))).name == "hospital_1"


def test_a_ca_certificate_is_not_a_member(root: Path, fed: Federation) -> None:
    _, ca = operator_ca(root / "kits")
    assert _reason(fed, der(ca)) == "certificate names no crypten-fl member"


def test_bytes_that_are_no_certificate(fed: Federation) -> None:
    assert _reason(fed, b"\x30\x03\x02\x01\x00") == "not an X.509 certificate"
    assert _reason(fed, b"") == "not an X.509 certificate"


# --- signatures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signers(root: Path):
    return {name: load_kit(root / "kits" / name) for name in ("hospital_0", "hospital_1")}


def _refusal(fed: Federation, name: str, data: bytes, signature: bytes) -> str:
    with pytest.raises(IdentityError) as err:
        fed.verify(name, data, signature)
    return err.value.reason


def test_signature_of_the_right_member_verifies(fed: Federation, signers) -> None:
    message = b"x25519 public key of hospital_0 for session 42: " + bytes(range(32))
    fed.verify("hospital_0", message, signers["hospital_0"].sign(message))


def test_signature_of_another_member_is_refused(fed: Federation, signers) -> None:
    message = b"x25519 key"
    assert _refusal(fed, "hospital_0", message, signers["hospital_1"].sign(message)) == (
        "signature of hospital_0 does not verify")


def test_signature_of_a_modified_message_is_refused(fed: Federation, signers) -> None:
    signature = signers["hospital_0"].sign(b"x25519 key A")
    assert _refusal(fed, "hospital_0", b"x25519 key B", signature) == (
        "signature of hospital_0 does not verify")
    assert _refusal(fed, "hospital_0", b"x25519 key A", signature[:-1]) == (
        "signature of hospital_0 does not verify")
    assert _refusal(fed, "hospital_0", b"x25519 key A", b"") == (
        "signature of hospital_0 does not verify")


def test_a_bare_signature_without_the_crypten_fl_context_is_refused(root: Path,
                                                                     fed: Federation) -> None:
    """Kit.sign signs under a context prefix: a signature of the key over the bare message
    (e.g. one made for another protocol) does not count."""
    key = load_kit(root / "kits" / "hospital_0")._key
    bare = key.sign(b"x25519 key", ec.ECDSA(hashes.SHA256()))
    assert _refusal(fed, "hospital_0", b"x25519 key", bare) == (
        "signature of hospital_0 does not verify")


def test_signature_claimed_by_a_non_member(fed: Federation, signers) -> None:
    assert _refusal(fed, "hospital_9", b"m", signers["hospital_0"].sign(b"m")) == (
        "not a member of federation fed-test")


def test_a_rotated_member_signs_with_its_new_key_only(root: Path) -> None:
    new = Federation.load(root / "rotated" / "hospital_0")
    old_kit = load_kit(root / "kits" / "hospital_2")
    assert _refusal(new, "hospital_2", b"m", old_kit.sign(b"m")) == (
        "signature of hospital_2 does not verify")
    new.verify("hospital_2", b"m", load_kit(root / "rotated" / "hospital_2").sign(b"m"))
