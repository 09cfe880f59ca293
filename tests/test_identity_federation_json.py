"""federation.json: the schema `provision` writes, and every hand edit of it refused."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crypten_fl.common import __version__
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity import Federation, rotate
from crypten_fl.fedtrain.identity import certificates as certs
from helpers.identities import kit_cert, kits, self_signed

KEYS = ["format", "format_version", "tool", "tool_version", "federation_id", "revision",
        "created_utc", "revised_utc", "expires_utc", "ca_fingerprint", "ca_certificate",
        "rendezvous", "members"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fedjson")
    kits(root, 3, ttp=True, rendezvous="rdv.example.org:29500")
    kits(root, 2, ttp=False, name="fed-other", out="other")
    return root


@pytest.fixture(scope="module")
def doc(root: Path) -> dict[str, Any]:
    return json.loads((root / "kits" / "ca" / "federation.json").read_text())


def test_schema(root: Path, doc: dict[str, Any]) -> None:
    assert list(doc) == KEYS
    assert doc["format"] == "crypten-fl-federation" and doc["format_version"] == 1
    assert (doc["tool"], doc["tool_version"]) == ("crypten-fl", __version__)
    assert doc["federation_id"] == "fed-test" and doc["revision"] == 1
    assert doc["created_utc"] == doc["revised_utc"] and doc["created_utc"].endswith("+00:00")
    ca_pem = (root / "kits" / "ca" / "ca.crt").read_text()
    assert doc["ca_certificate"] == ca_pem
    assert doc["ca_fingerprint"] == certs.fingerprint(
        certs.x509.load_pem_x509_certificate(ca_pem.encode()))
    assert doc["rendezvous"] == {"address": "rdv.example.org:29500", "host": "rendezvous"}
    assert [(m["name"], m["role"], m["rank"]) for m in doc["members"]] == [
        ("hospital_0", "hospital", 0), ("hospital_1", "hospital", 1),
        ("hospital_2", "hospital", 2), ("ttp", "ttp", 3), ("rendezvous", "rendezvous", None)]
    for m in doc["members"]:
        assert list(m) == ["name", "role", "rank", "fingerprint", "certificate"]
        assert m["certificate"] == (root / "kits" / m["name"] / "member.crt").read_text()
        assert m["fingerprint"] == certs.fingerprint(kit_cert(root / "kits" / m["name"]))
        assert len(m["fingerprint"]) == 64


def test_every_kit_holds_the_same_federation_json(root: Path) -> None:
    texts = {p.read_text() for p in (root / "kits").glob("*/federation.json")}
    assert len(texts) == 1 and len(list((root / "kits").glob("*/federation.json"))) == 6


def test_without_rendezvous_the_store_is_hospital_0s(root: Path) -> None:
    doc = json.loads((root / "other" / "hospital_1" / "federation.json").read_text())
    assert doc["rendezvous"] == {"address": None, "host": "hospital_0"}
    assert [m["name"] for m in doc["members"]] == ["hospital_0", "hospital_1"]


def test_load_round_trips_and_digest_is_shared(root: Path, doc: dict[str, Any]) -> None:
    fed = Federation.load(root / "kits" / "hospital_1")
    assert fed.to_json() == doc
    assert Federation.load(root / "kits" / "ttp" / "federation.json").digest == fed.digest
    assert Federation.load(root / "other" / "hospital_0").digest != fed.digest


def test_rotation_changes_revision_and_digest(root: Path, tmp_path: Path) -> None:
    old = Federation.load(root / "kits" / "hospital_0")
    new = rotate(root / "kits", "ttp", tmp_path / "new")
    assert new.revision == 2 and new.created_utc == old.created_utc
    assert new.revised_utc >= old.revised_utc and new.expires_utc == old.expires_utc
    assert new.digest != old.digest
    assert [m.fingerprint == o.fingerprint for m, o in zip(new.members, old.members, strict=True)
            ] == [True, True, True, False, True]


Edit = Callable[[dict[str, Any], dict[str, Any]], None]


def _member(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in doc["members"] if m["name"] == name)


def _swap_cert(doc: dict[str, Any], name: str, pem: str) -> None:
    _member(doc, name).update(certificate=pem, fingerprint=certs.fingerprint(
        certs.x509.load_pem_x509_certificate(pem.encode())))


def _fake_member(doc: dict[str, Any], other: dict[str, Any]) -> None:
    pem = certs.cert_pem(self_signed("fed-test", "hospital_3")[1]).decode()
    doc["members"].insert(3, {"name": "hospital_3", "role": "hospital", "rank": 3,
                              "fingerprint": "", "certificate": pem})
    _swap_cert(doc, "hospital_3", pem)
    _member(doc, "ttp")["rank"] = 4


TAMPERING: dict[str, tuple[Edit, str]] = {
    "fingerprint-edited": (
        lambda d, o: _member(d, "hospital_1").update(fingerprint="00" * 32),
        "members[1] (hospital_1): fingerprint does not match its certificate"),
    "certificate-of-another-member": (
        lambda d, o: _swap_cert(d, "hospital_1", _member(d, "hospital_2")["certificate"]),
        "members[1] (hospital_1): certificate is not hospital_1's of federation fed-test"),
    "certificate-of-another-federation": (
        lambda d, o: _swap_cert(d, "hospital_1", _member(o, "hospital_1")["certificate"]),
        "members[1] (hospital_1): certificate not issued by the federation's CA"),
    "self-signed-member-added": (
        _fake_member, "members[3] (hospital_3): certificate not issued by the federation's CA"),
    "ca-of-another-federation": (
        lambda d, o: d.update(ca_certificate=o["ca_certificate"],
                              ca_fingerprint=o["ca_fingerprint"]),
        "ca_certificate is not the CA of federation fed-test"),
    "ca-fingerprint-edited": (
        lambda d, o: d.update(ca_fingerprint="ab" * 32),
        "ca_fingerprint does not match ca_certificate"),
    "federation-id-edited": (
        lambda d, o: d.update(federation_id="fed-evil"),
        "ca_certificate is not the CA of federation fed-evil"),
    "ranks-swapped": (
        lambda d, o: (_member(d, "hospital_1").update(rank=2),
                      _member(d, "hospital_2").update(rank=1)),
        "members[1]: 'hospital_1' with role 'hospital' and rank 2 does not fit the federation"),
    "member-removed": (
        lambda d, o: d["members"].pop(1),
        "members[1]: 'hospital_2' with role 'hospital' and rank 2 does not fit the federation"),
    "member-duplicated": (
        lambda d, o: d["members"].insert(1, copy.deepcopy(d["members"][0])),
        "members: hospital_0 is listed twice"),
    "members-reordered": (
        lambda d, o: d["members"].reverse(),
        "members must be hospital_0, hospital_1, hospital_2, ttp, rendezvous in this order"),
    "no-members": (lambda d, o: d.update(members=[]), "a federation needs at least one hospital"),
    "store-host-changed": (
        lambda d, o: d.update(rendezvous={"address": "rdv.example.org:29500",
                                          "host": "hospital_0"}),
        "rendezvous host must be 'rendezvous' when the address is given"),
    "store-host-unknown": (
        lambda d, o: d.update(rendezvous={"address": None, "host": "hospital_1"}),
        "rendezvous host must be 'rendezvous' or 'hospital_0' when the address is null"),
    "store-address-bad": (
        lambda d, o: d["rendezvous"].update(address="rdv.example.org"),
        "rendezvous address 'rdv.example.org': expected HOST:PORT"),
    "newer-format": (lambda d, o: d.update(format_version=2),
                     "format version 2; this crypten-fl reads version 1"),
    "format-version-true": (lambda d, o: d.update(format_version=True),
                            "field 'format_version' has the wrong type"),
    "not-a-federation": (lambda d, o: d.update(format="crypten-fl-run"),
                         "not a crypten-fl federation.json (format 'crypten-fl-run')"),
    "field-missing": (lambda d, o: d.pop("revision"), "missing field 'revision'"),
    "field-unknown": (lambda d, o: d.update(extra=1), "unknown field 'extra'"),
    "rank-a-string": (lambda d, o: _member(d, "ttp").update(rank="3"),
                      "members[3]: field 'rank' has the wrong type"),
    "member-field-missing": (lambda d, o: _member(d, "ttp").pop("certificate"),
                             "members[3]: missing field 'certificate'"),
    "certificate-garbage": (lambda d, o: _member(d, "ttp").update(certificate="-----BEGIN"),
                            "members[3] (ttp): not a PEM certificate"),
    "revision-zero": (lambda d, o: d.update(revision=0), "field 'revision' must be at least 1"),
    "bad-time": (lambda d, o: d.update(expires_utc="soon"),
                 "field 'expires_utc' is not an ISO 8601 time"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_federation_json_is_refused(root: Path, doc: dict[str, Any], tmp_path: Path,
                                             case: str) -> None:
    edit, message = TAMPERING[case]
    other = json.loads((root / "other" / "ca" / "federation.json").read_text())
    tampered = copy.deepcopy(doc)
    edit(tampered, other)
    path = tmp_path / "federation.json"
    path.write_text(json.dumps(tampered))
    with pytest.raises(UserError) as err:
        Federation.load(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"), ("[]", "expected a JSON object"), ("null", "expected a JSON object")])
def test_broken_federation_json(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "federation.json"
    path.write_text(text)
    with pytest.raises(UserError, match=rf"^{path}: {message}"):
        Federation.load(path)


def test_missing_federation_json(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path, ignore_errors=True)
    with pytest.raises(UserError, match=rf"^{tmp_path}/federation.json: file not found$"):
        Federation.load(tmp_path / "federation.json")
