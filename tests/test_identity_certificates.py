"""The CA and member certificates `provision` issues, field by field, and federation ids."""

from __future__ import annotations

import hashlib
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity.names import check_address, check_federation_id
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from helpers.identities import der, kit_cert, kits, operator_ca
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kits(tmp_path_factory.mktemp("certs"), 2, ttp=True, rendezvous="rdv.example:29500")


def _subject(cert: x509.Certificate) -> dict[str, str]:
    return {a.oid._name: str(a.value) for a in cert.subject}


def _extension(cert: x509.Certificate, kind: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def test_ca_is_a_self_signed_p256_ca_that_signs_members_only(federation: Path) -> None:
    _, ca = operator_ca(federation)
    assert _subject(ca) == {"commonName": "crypten-fl CA fed-test",
                            "organizationName": "crypten-fl",
                            "organizationalUnitName": "fed-test"}
    assert ca.issuer == ca.subject and certs.issued_by(ca, ca)
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    constraints = _extension(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = _extension(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert ca.signature_hash_algorithm is not None and ca.signature_hash_algorithm.name == "sha256"


@pytest.mark.parametrize("member", ["hospital_0", "hospital_1", "ttp", "rendezvous"])
def test_member_certificate_names_its_member_and_allows_tls_both_ways(
        federation: Path, member: str) -> None:
    cert = kit_cert(federation / member)
    _, ca = operator_ca(federation)
    assert _subject(cert) == {"commonName": member, "organizationName": "crypten-fl",
                              "organizationalUnitName": "fed-test"}
    assert cert.issuer == ca.subject and certs.issued_by(cert, ca)
    san = _extension(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"crypten-fl://fed-test/{member}"]
    assert len(list(san)) == 1
    constraints = _extension(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = _extension(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.key_encipherment
                or usage.value.key_agreement or usage.value.crl_sign)
    assert list(_extension(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certs.claimed_identity(cert) == ("fed-test", member)
    assert certs.fingerprint(cert) == hashlib.sha256(der(cert)).hexdigest()


def test_validity_is_five_minutes_back_to_the_given_days_ahead(federation: Path) -> None:
    cert = kit_cert(federation / "hospital_0")
    _, ca = operator_ca(federation)
    now = datetime.now(UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    assert end - start == timedelta(days=365, minutes=5)
    assert now - timedelta(minutes=6) < start < now - timedelta(minutes=4)
    assert (ca.not_valid_before_utc, ca.not_valid_after_utc) == (start, end)


def test_validity_problem_names_the_boundary() -> None:
    start = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    key = certs.new_key()
    ca = certs.make_ca(key, "fed-x", start, start + timedelta(days=1))
    assert certs.validity_problem(ca, start - timedelta(seconds=1)) == (
        "not valid before 2030-01-02 03:04 UTC")
    assert certs.validity_problem(ca, start + timedelta(hours=1)) is None
    assert certs.validity_problem(ca, start + timedelta(days=2)) == (
        "expired on 2030-01-03 03:04 UTC")


def test_a_certificate_whose_names_disagree_claims_no_identity(federation: Path) -> None:
    ca_key, ca = operator_ca(federation)
    key = certs.new_key()
    cert = certs.issue_member(ca_key, ca, "fed-test", "hospital_0", key.public_key(),
                              ca.not_valid_before_utc, ca.not_valid_after_utc)
    renamed = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hospital_1"),
                                        *list(cert.subject)[1:]]))
               .issuer_name(ca.subject).public_key(key.public_key()).serial_number(7)
               .not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc)
               .add_extension(_extension(cert, x509.SubjectAlternativeName).value, False)
               .sign(ca_key, cert.signature_hash_algorithm))
    assert certs.claimed_identity(renamed) is None
    assert certs.claimed_identity(ca) is None


_ID_CHARS = string.ascii_lowercase + string.digits


@settings(max_examples=60, deadline=None)
@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True),
       st.sampled_from(["hospital_0", "hospital_17", "ttp", "rendezvous"]))
def test_every_valid_federation_id_round_trips_through_a_certificate(fed_id: str,
                                                                     member: str) -> None:
    assert check_federation_id(fed_id) == fed_id
    key = certs.new_key()
    now = datetime.now(UTC)
    ca = certs.make_ca(key, fed_id, now, now + timedelta(days=1))
    cert = certs.issue_member(key, ca, fed_id, member, key.public_key(), now,
                              now + timedelta(days=1))
    assert certs.claimed_identity(cert) == (fed_id, member)
    assert certs.federation_of_ca(ca) == fed_id


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=0, max_size=70))
def test_federation_ids_outside_the_dns_label_form_are_refused(text: str) -> None:
    valid = (0 < len(text) <= 63 and set(text) <= set(_ID_CHARS + "-")
             and text[0] != "-" and text[-1] != "-")
    if valid:
        assert check_federation_id(text) == text
    else:
        with pytest.raises(UserError, match=r"^--name .*: a federation id is 1-63 lowercase"):
            check_federation_id(text)


@pytest.mark.parametrize("address", ["rdv.example.org:29500", "10.0.0.5:1", "[::1]:65535",
                                     "localhost:29500", "a-b.c:80"])
def test_rendezvous_addresses_accepted(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["rdv.example.org", ":29500", "host:0", "host:65536",
                                     "host:-1", "::1:80", "[::1:80", "-bad.host:80",
                                     "tcp://host:80", "host:80 ", "ho st:80", "host:٣"])
def test_rendezvous_addresses_refused(address: str) -> None:
    with pytest.raises(UserError, match=r"^--rendezvous .*: expected HOST:PORT"):
        check_address(address)
