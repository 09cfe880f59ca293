"""provision, rotate and provision_ephemeral: what they write, what they refuse, and that the
CA key never reaches a site."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import MARKER
from crypten_fl.fedtrain.identity import (
    Federation,
    IdentityError,
    document,
    load_kit,
    provision,
    provision_ephemeral,
    rotate,
)
from cryptography.hazmat.primitives import serialization
from helpers.identities import der, kit_cert, kits, operator_ca, tree
from hypothesis import given, settings
from hypothesis import strategies as st

KIT_FILES = ["ca.crt", "federation.json", "member.crt", "member.key"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("provision")
    kits(root, 3, ttp=True, rendezvous="rdv.example.org:29500")
    return root / "kits"


@pytest.fixture
def source(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "kits", symlinks=True))


def test_layout_and_modes(pristine: Path) -> None:
    assert sorted(p.name for p in pristine.iterdir()) == [
        MARKER, "ca", "hospital_0", "hospital_1", "hospital_2", "rendezvous", "ttp"]
    assert sorted(p.name for p in (pristine / "ca").iterdir()) == [
        "ca.crt", "ca.key", "federation.json"]
    assert _mode(pristine) == 0o700 and _mode(pristine / "ca") == 0o700
    assert _mode(pristine / "ca" / "ca.key") == 0o600
    for member in ("hospital_0", "hospital_1", "hospital_2", "ttp", "rendezvous"):
        kit = pristine / member
        assert sorted(p.name for p in kit.iterdir()) == KIT_FILES
        assert _mode(kit) == 0o700 and _mode(kit / "member.key") == 0o600
        assert [_mode(kit / name) for name in ("ca.crt", "federation.json", "member.crt")] == [
            0o644] * 3
        assert (kit / "ca.crt").read_bytes() == (pristine / "ca" / "ca.crt").read_bytes()
        assert (kit / "member.key").read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
        assert load_kit(kit).name == member
    assert not list(pristine.parent.glob(".kits.*"))


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        provision(tmp_path / "kits", 1, ttp=False, rendezvous=None)
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(tmp_path)): _mode(p) for p in sorted(tmp_path.rglob("*"))}
    assert modes == {"kits": 0o700, f"kits/{MARKER}": 0o644, "kits/ca": 0o700,
                     "kits/ca/ca.crt": 0o644, "kits/ca/ca.key": 0o600,
                     "kits/ca/federation.json": 0o644,
                     "kits/hospital_0": 0o700, "kits/hospital_0/ca.crt": 0o644,
                     "kits/hospital_0/federation.json": 0o644,
                     "kits/hospital_0/member.crt": 0o644, "kits/hospital_0/member.key": 0o600}


def _ca_key_needles(kits_dir: Path) -> list[bytes]:
    """Every form the CA key could leak in: PEM, its base64 lines, DER, the raw scalar."""
    ca_key, _ = operator_ca(kits_dir)
    pem = (kits_dir / "ca" / "ca.key").read_bytes()
    der_key = ca_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    scalar = ca_key.private_numbers().private_value.to_bytes(32, "big")
    lines = [ln for ln in pem.splitlines() if ln and not ln.startswith(b"-----")]
    return [pem, der_key, scalar, scalar.hex().encode(), base64.b64encode(scalar)[:40], *lines]


def test_the_ca_key_is_in_no_site_kit(pristine: Path) -> None:
    needles = _ca_key_needles(pristine)
    files = [p for p in pristine.rglob("*") if p.is_file()]
    holding = sorted({str(p.relative_to(pristine)) for p in files for n in needles
                      if n in p.read_bytes()})
    assert holding == ["ca/ca.key"]  # the scan does find it where it belongs


def test_the_ca_key_is_in_no_rotated_site_kit(source: Path, tmp_path: Path) -> None:
    rotate(source, "hospital_1", tmp_path / "new")
    needles = _ca_key_needles(source)
    holding = sorted({str(p.relative_to(tmp_path / "new"))
                      for p in (tmp_path / "new").rglob("*") if p.is_file()
                      for n in needles if n in p.read_bytes()})
    assert holding == ["ca/ca.key"]


@pytest.mark.parametrize("existing", ["full", "empty", "file"])
def test_an_existing_kits_is_refused_and_left_byte_identical(source: Path, tmp_path: Path,
                                                              existing: str) -> None:
    out = {"full": source, "empty": tmp_path / "empty", "file": tmp_path / "file"}[existing]
    if existing == "empty":
        out.mkdir()
    elif existing == "file":
        out.write_text("mine")
    before = tree(tmp_path)
    with pytest.raises(UserError) as err:
        provision(out, 2, ttp=False, rendezvous=None)
    assert str(err.value) == (f"--out {out}: already exists; provisioning never overwrites "
                              "kits (give a new directory)")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("kwargs, message", [
    ({"hospitals": 0}, "--hospitals 0: must be in 1..256"),
    ({"hospitals": 257}, "--hospitals 257: must be in 1..256"),
    ({"days": 0}, "--days 0: must be in 1..3650"),
    ({"days": 3651}, "--days 3651: must be in 1..3650"),
    ({"name": "Fed_1"}, "--name 'Fed_1': a federation id is 1-63 lowercase letters"),
    ({"rendezvous": "rdv:99999"}, "--rendezvous 'rdv:99999': expected HOST:PORT"),
])
def test_bad_parameters(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"hospitals": 2, "ttp": False, "rendezvous": None, **kwargs}
    with pytest.raises(UserError) as err:
        provision(tmp_path / "kits", **args)
    assert str(err.value).startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_writing_leaves_nothing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_write(path: Path, fed: Federation) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        path.write_text("{}")

    monkeypatch.setattr(document, "write", failing_write)
    with pytest.raises(UserError) as err:
        provision(tmp_path / "kits", 2, ttp=False, rendezvous=None)
    assert str(err.value) == (f"--out {tmp_path}/kits: cannot write (No space left on device); "
                              "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_writing_throw_away_kits_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_write(path: Path, fed: Federation) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(document, "write", failing_write)
    tmp_path.chmod(0o700)
    with pytest.raises(UserError) as err:
        provision_ephemeral(tmp_path, 2, ttp=False)
    assert str(err.value) == (f"{tmp_path}: cannot write the run's kits (No space left on "
                              "device)")
    assert list(tmp_path.iterdir()) == []


def test_default_federation_id_is_random(tmp_path: Path) -> None:
    a = provision(tmp_path / "a", 1, ttp=False, rendezvous=None)
    b = provision(tmp_path / "b", 1, ttp=False, rendezvous=None)
    assert a.id.startswith("fed-") and len(a.id) == 20 and a.id != b.id
    assert int(a.id[4:], 16) >= 0
    assert a.ca_fingerprint != b.ca_fingerprint


# --- rotation -------------------------------------------------------------------------------


def test_rotation_replaces_one_member_and_never_touches_kits(source: Path,
                                                             tmp_path: Path) -> None:
    before = tree(source)
    new = tmp_path / "new"
    fed = rotate(source, "hospital_1", new)
    assert tree(source) == before
    assert sorted(p.name for p in new.iterdir()) == sorted(p.name for p in source.iterdir())
    for member in fed.names:
        same = member != "hospital_1"
        for name in ("member.key", "member.crt"):
            assert ((new / member / name).read_bytes() == (source / member / name).read_bytes()
                    ) is same, (member, name)
        assert _mode(new / member / "member.key") == 0o600
        assert (new / member / "federation.json").read_bytes() == (
            new / "ca" / "federation.json").read_bytes()
        assert load_kit(new / member).federation.revision == 2
    assert (new / "ca" / "ca.key").read_bytes() == (source / "ca" / "ca.key").read_bytes()
    assert fed.member("hospital_1").fingerprint != Federation.load(
        source / "ca" / "federation.json").member("hospital_1").fingerprint
    with pytest.raises(IdentityError, match="certificate of hospital_1 is no longer listed"):
        fed.identify(der(kit_cert(source / "hospital_1")))
    rotated_again = rotate(new, "ttp", tmp_path / "newer")
    assert rotated_again.revision == 3


def test_rotation_needs_no_kit_of_the_compromised_member(source: Path, tmp_path: Path) -> None:
    shutil.rmtree(source / "hospital_2")
    fed = rotate(source, "hospital_2", tmp_path / "new")
    assert load_kit(tmp_path / "new" / "hospital_2").member == fed.member("hospital_2")


def _rotation_error(source: Path, member: str, out: Path) -> str:
    with pytest.raises(UserError) as err:
        rotate(source, member, out)
    return str(err.value)


def test_rotation_errors(source: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    assert _rotation_error(source, "hospital_9", new) == (
        "--rotate hospital_9: federation fed-test has no such member (members: hospital_0, "
        "hospital_1, hospital_2, ttp, rendezvous)")
    assert _rotation_error(source, "ttp", source / "new") == (
        f"--out {source}/new: lies inside --from {source}, which this command reads (outputs "
        "never go into, onto or around inputs; choose another --out)")
    assert _rotation_error(source, "ttp", source).startswith(f"--out {source}: is --from")
    assert _rotation_error(source, "ttp", tmp_path).startswith(f"--out {tmp_path}: contains --from")
    assert _rotation_error(tmp_path / "nowhere", "ttp", new) == (
        f"--from {tmp_path}/nowhere: not a directory")
    (tmp_path / "taken").mkdir()
    assert _rotation_error(source, "ttp", tmp_path / "taken") == (
        f"--out {tmp_path}/taken: already exists; provisioning never overwrites kits "
        "(give a new directory)")
    assert not new.exists()


def test_rotation_without_the_operators_ca(source: Path, tmp_path: Path) -> None:
    (source / "ca" / "ca.key").unlink()
    assert _rotation_error(source, "ttp", tmp_path / "new") == (
        f"{source}/ca/ca.key: file not found (--from needs the KITS directory written by "
        "`crypten-fl provision`, with its ca/)")


def test_rotation_refuses_a_ca_key_readable_by_others(source: Path, tmp_path: Path) -> None:
    (source / "ca" / "ca.key").chmod(0o644)
    assert _rotation_error(source, "ttp", tmp_path / "new").startswith(
        f"{source}/ca/ca.key: mode 0644 lets other users read the private key")


def test_rotation_refuses_a_damaged_kit_it_would_copy(source: Path, tmp_path: Path) -> None:
    shutil.copy(source / "hospital_1" / "member.key", source / "hospital_0" / "member.key")
    assert _rotation_error(source, "ttp", tmp_path / "new") == (
        f"{source}/hospital_0/member.key: does not match {source}/hospital_0/member.crt "
        "(key of another member?)")
    assert not (tmp_path / "new").exists()


def test_rotation_refuses_a_ca_of_another_federation(source: Path, tmp_path: Path) -> None:
    other = kits(tmp_path, 1, ttp=False, name="fed-other", out="other")
    for name in ("ca.key", "ca.crt"):
        shutil.copy(other / "ca" / name, source / "ca" / name)
    assert _rotation_error(source, "ttp", tmp_path / "new") == (
        f"{source}/ca/ca.crt: not the CA that {source}/ca/federation.json lists")


# --- throw-away federations -----------------------------------------------------------------


def test_ephemeral_federation_has_kits_and_no_ca(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    root = provision_ephemeral(tmp_path, 2, ttp=True)
    assert root == tmp_path / "kits" and _mode(root) == 0o700
    assert sorted(p.name for p in root.iterdir()) == ["hospital_0", "hospital_1", "rendezvous",
                                                      "ttp"]
    assert not list(root.rglob("ca.key"))
    doc = json.loads((root / "ttp" / "federation.json").read_text())
    # the launcher hosts the store as the rendezvous member, on a port chosen at launch
    assert doc["rendezvous"] == {"address": None, "host": "rendezvous"}
    with pytest.raises(UserError, match=r"kits: already exists$"):
        provision_ephemeral(tmp_path, 2, ttp=True)


def test_ephemeral_federation_needs_a_private_directory(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    with pytest.raises(UserError) as err:
        provision_ephemeral(tmp_path, 2, ttp=False)
    assert str(err.value) == (f"{tmp_path}: mode 0755 lets other users read the run's keys "
                              f"(make it 0700: chmod 700 {tmp_path})")
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 9), st.booleans())
def test_ephemeral_federations_of_any_size(hospitals: int, ttp: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = provision_ephemeral(Path(directory), hospitals, ttp=ttp)
        loaded = [load_kit(kit) for kit in sorted(root.iterdir())]
        fed = loaded[0].federation
        assert fed.world_size == hospitals + ttp
        assert [fed.at_rank(r).name for r in range(fed.world_size)] == [
            *(f"hospital_{k}" for k in range(hospitals)), *(["ttp"] if ttp else [])]
        assert all(kit.federation.digest == fed.digest for kit in loaded)
        for kit in loaded:
            assert fed.identify(der(kit_cert(kit.path))) == kit.member
            fed.verify(kit.name, b"m", kit.sign(b"m"))
