"""Who may open a link: every impostor is refused at the handshake, with its reason, at both ends.

Each test plays one attacker against a real listener (fedtrain/transport/mesh.py) of a real
federation: a self-signed certificate with the right names, another federation's valid kit, an
expired certificate from the right CA, a certificate rotated out of federation.json, a valid
member claiming another member's rank, a client without a certificate, plain TCP garbage, a
silent client, and a listener that is not who the dialler expects.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time
from pathlib import Path

import pytest
import torch
from crypten_fl.fedtrain.identity import rotate
from crypten_fl.fedtrain.transport.channels import PeerRefused
from crypten_fl.fedtrain.transport.links import COLLECTIVE, as_bytes
from crypten_fl.fedtrain.transport.mesh import dial
from helpers import identities
from helpers.transport import accepting, impostor, member, raw_connection

NAMES = ["hospital_0", "hospital_1", "hospital_2"]


@pytest.fixture(scope="module")
def kits(tmp_path_factory) -> Path:
    return identities.kits(tmp_path_factory.mktemp("fed"), 3, ttp=False)


def hello(rank: int, federation: str = "fed-test") -> dict[str, object]:
    return {"federation": federation, "rank": rank, "nonce": "group"}


def deadline() -> float:
    return time.monotonic() + 10


def test_the_member_at_its_own_rank_gets_a_working_link(kits: Path) -> None:
    acc = accepting(member(kits, "hospital_0"), NAMES)
    out = dial(member(kits, "hospital_1"), "127.0.0.1", acc.listener.port, "hospital_0",
               hello(1), deadline(), 10)
    acc.wait_for(lambda: 1 in acc.links)
    out.send(COLLECTIVE, 0, 5, as_bytes(torch.tensor([1.5, -2.5])))
    got = acc.links[1].take(0, 5, deadline())
    assert torch.equal(got.view(torch.float32), torch.tensor([1.5, -2.5]))
    assert acc.refused == [] and acc.links[1].peer == "hospital_1"
    acc.listener.close()


def refused_both_ways(acc, dialler, rank: int = 1, expected: str = "hospital_0"
                      ) -> tuple[str, str]:
    """Dial ``acc`` as ``dialler`` claiming ``rank``; both ends' reasons (no link may appear)."""
    with pytest.raises(PeerRefused) as err:
        dial(dialler, "127.0.0.1", acc.listener.port, expected, hello(rank), deadline(), 10)
    acc.wait_for(lambda: acc.refused)
    assert acc.links == {}
    return err.value.reason, acc.refused[0].reason


def test_a_valid_member_claiming_another_rank_is_refused(kits: Path) -> None:
    acc = accepting(member(kits, "hospital_0"), NAMES)
    theirs, ours = refused_both_ways(acc, member(kits, "hospital_2"), rank=1)
    assert ours == "certificate of hospital_2 claims rank 1 (which is hospital_1)"
    assert theirs == f"hospital_0 refused this member: {ours}"


def test_a_self_signed_certificate_with_the_right_names_is_refused(kits: Path,
                                                                   tmp_path: Path) -> None:
    key, cert = identities.self_signed("fed-test", "hospital_1")
    acc = accepting(member(kits, "hospital_0"), NAMES)
    theirs, ours = refused_both_ways(acc, impostor(kits, "hospital_1", key, cert, tmp_path))
    assert ours == "certificate refused (self-signed certificate)"
    assert theirs == "TLS handshake failed: the peer does not trust this federation's CA"


def test_a_valid_kit_of_another_federation_is_refused(kits: Path, tmp_path: Path) -> None:
    other = identities.kits(tmp_path, 3, ttp=False, name="fed-other")
    acc = accepting(member(kits, "hospital_0"), NAMES)
    # as it is, the other federation's member does not even trust our listener
    theirs, ours = refused_both_ways(acc, member(other, "hospital_1"))
    assert theirs == "certificate refused (self-signed certificate in certificate chain)"
    assert ours == "TLS handshake failed: the peer does not trust this federation's CA"
    # an attacker who trusts our (public) CA certificate gets past that, and is refused by us
    acc = accepting(member(kits, "hospital_0"), NAMES)
    theirs_kit = other / "hospital_1"
    attacker = impostor(kits, "hospital_1", identities.read_private_key(theirs_kit / "member.key"),
                        identities.kit_cert(theirs_kit), tmp_path / "attacker")
    _, ours = refused_both_ways(acc, attacker)
    assert ours == "certificate refused (unable to get local issuer certificate)"


def test_a_look_alike_ca_is_refused(kits: Path, tmp_path: Path) -> None:
    key, cert = identities.lookalike("fed-test", "hospital_1")
    acc = accepting(member(kits, "hospital_0"), NAMES)
    _, ours = refused_both_ways(acc, impostor(kits, "hospital_1", key, cert, tmp_path))
    assert ours.startswith("certificate refused (")


def test_an_expired_certificate_from_the_right_ca_is_refused(kits: Path, tmp_path: Path) -> None:
    key, cert = identities.expired(kits, "hospital_1")
    acc = accepting(member(kits, "hospital_0"), NAMES)
    _, ours = refused_both_ways(acc, impostor(kits, "hospital_1", key, cert, tmp_path))
    assert ours == "certificate refused (certificate has expired)"


def test_a_rotated_out_certificate_is_refused(kits: Path, tmp_path: Path) -> None:
    rotated = tmp_path / "rotated"
    rotate(kits, "hospital_1", rotated)
    acc = accepting(member(rotated, "hospital_0"), NAMES)  # knows the new federation.json
    _, ours = refused_both_ways(acc, member(kits, "hospital_1"))  # the old, compromised kit
    assert "hospital_1" in ours and "no longer listed" in ours
    # the new kit of hospital_1 gets in
    dial(member(rotated, "hospital_1"), "127.0.0.1", acc.listener.port, "hospital_0", hello(1),
         deadline(), 10)
    acc.wait_for(lambda: 1 in acc.links)


def test_members_holding_different_federation_files_refuse_each_other(kits: Path,
                                                                     tmp_path: Path) -> None:
    rotated = tmp_path / "rotated"
    rotate(kits, "hospital_1", rotated)
    acc = accepting(member(rotated, "hospital_0"), NAMES)
    # hospital_2 was not rotated, but still holds the old federation.json, which would accept
    # hospital_1's compromised key: the link is refused until it gets the new file
    _, ours = refused_both_ways(acc, member(kits, "hospital_2"), rank=2)
    assert ours == ("hospital_2 holds another federation.json (every member needs the same "
                    "file; after a rotation, distribute the new one to every site)")


def test_a_client_without_certificate_is_refused(kits: Path) -> None:
    acc = accepting(member(kits, "hospital_0"), NAMES)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", acc.listener.port)) as raw, \
            context.wrap_socket(raw) as tls, \
            pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        tls.sendall(b"\0" * 4)
        if not tls.recv(1):
            raise EOFError
    acc.wait_for(lambda: acc.refused)
    assert acc.refused[0].reason == "TLS handshake failed: the peer presented no certificate"
    assert acc.links == {}


def test_plain_tcp_garbage_and_silence_do_not_stop_honest_members(kits: Path,
                                                                  monkeypatch) -> None:
    from crypten_fl.fedtrain.transport import mesh

    monkeypatch.setattr(mesh, "HANDSHAKE_TIMEOUT_S", 1.0)
    acc = accepting(member(kits, "hospital_0"), NAMES)
    silent = [raw_connection(acc.listener.port, close=False) for _ in range(5)]
    for _ in range(20):
        raw_connection(acc.listener.port, os.urandom(300))
    raw_connection(acc.listener.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    dial(member(kits, "hospital_1"), "127.0.0.1", acc.listener.port, "hospital_0", hello(1),
         deadline(), 10)  # an honest member is not held up by any of them
    acc.wait_for(lambda: 1 in acc.links)
    acc.wait_for(lambda: len(acc.refused) >= 26)
    reasons = {r.reason for r in acc.refused}
    assert "no TLS handshake within the time limit" in reasons
    assert all(r.startswith(("TLS handshake failed", "no TLS handshake", "connection failed"))
               for r in reasons), reasons
    assert list(acc.links) == [1]
    for sock in silent:
        sock.close()


def test_the_dialler_refuses_a_listener_that_is_not_the_expected_member(kits: Path) -> None:
    acc = accepting(member(kits, "hospital_2"), NAMES)  # the address leads to hospital_2
    with pytest.raises(PeerRefused) as err:
        dial(member(kits, "hospital_1"), "127.0.0.1", acc.listener.port, "hospital_0", hello(1),
             deadline(), 10)
    assert err.value.reason == "certificate of hospital_2, expected hospital_0"
    time.sleep(0.2)
    assert acc.links == {}


@pytest.mark.parametrize("bad,reason", [
    ({"federation": "fed-other"}, "hospital_1: hello for another federation ('fed-other')"),
    ({"nonce": "stale"}, "hospital_1: no such group here (stale or forged address)"),
    ({"rank": 7}, "hospital_1 claims rank 7, which this group does not have"),
    ({"key": base64.b64encode(b"short").decode()}, "hospital_1: hello without a valid link key"),
])
def test_a_malformed_hello_from_a_member_is_refused(kits: Path, bad: dict, reason: str,
                                                    monkeypatch) -> None:
    from crypten_fl.fedtrain.transport import mesh

    acc = accepting(member(kits, "hospital_0"), NAMES)
    original = mesh.send_control
    monkeypatch.setattr(mesh, "send_control", lambda s, m: original(s, {**m, **bad}))
    with pytest.raises(PeerRefused) as err:
        dial(member(kits, "hospital_1"), "127.0.0.1", acc.listener.port, "hospital_0", hello(1),
             deadline(), 10)
    acc.wait_for(lambda: acc.refused)
    assert acc.refused[0].reason == reason
    assert err.value.reason == f"hospital_0 refused this member: {reason}"
