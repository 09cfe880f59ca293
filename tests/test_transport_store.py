"""The rendezvous store over TLS: torch Store semantics, owned keys, and who may connect."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import pytest
import torch.distributed as dist
from crypten_fl.fedtrain.transport import store as store_module
from crypten_fl.fedtrain.transport.store import StoreError, StoreServer, TlsStore, owner
from helpers import identities
from helpers.transport import impostor, member, raw_connection

TIMEOUT = datetime.timedelta(seconds=5)


@pytest.fixture(scope="module")
def kits(tmp_path_factory) -> Path:
    return identities.kits(tmp_path_factory.mktemp("fed"), 3, ttp=False, rendezvous="127.0.0.1:1")


@pytest.fixture()
def server(kits: Path):
    refused: list = []
    srv = StoreServer(member(kits, "rendezvous"), "127.0.0.1", 0, on_refused=refused.append)
    srv.refused = refused  # type: ignore[attr-defined]
    yield srv
    srv.close()


def client(kits: Path, server: StoreServer, name: str = "hospital_1") -> TlsStore:
    return TlsStore(member(kits, name), "127.0.0.1", server.port, "rendezvous", TIMEOUT)


def test_store_semantics_match_torch(kits: Path, server: StoreServer) -> None:
    a, b = client(kits, server), client(kits, server, "hospital_2")
    a.set("x", "1")
    assert b.get("x") == b"1"
    assert b.add("n", 2) == 2 and a.add("n", 3) == 5 and a.get("n") == b"5"
    assert a.check(["x", "n"]) and not a.check(["x", "missing"])
    assert a.compare_set("c", "", "first") == b"first"
    assert b.compare_set("c", "wrong", "second") == b"first"
    assert b.compare_set("c", "first", "second") == b"second"
    assert a.delete_key("x") and not a.delete_key("x")
    a.multi_set(["m1", "m2"], ["u", b"v"])
    assert b.multi_get(["m1", "m2"]) == [b"u", b"v"]
    a.append("log", "ab")
    b.append("log", "cd")
    assert a.get("log") == b"abcd"
    assert a.num_keys() == 5  # n, c, m1, m2, log
    prefixed = dist.PrefixStore("e0/pg", a)  # how torch.distributed uses it
    prefixed.set("k", b"v")
    assert b.get("e0/pg/k") == b"v"


def test_waits_time_out_like_a_tcpstore(kits: Path, server: StoreServer) -> None:
    a = client(kits, server)
    a.set_timeout(datetime.timedelta(seconds=0.3))
    with pytest.raises(dist.DistStoreError, match="timed out waiting for never"):
        a.get("never")
    with pytest.raises(dist.DistStoreError):
        a.wait(["never"], datetime.timedelta(seconds=0.2))
    server.local_set("later", "here")  # the hosting process writes directly
    a.wait(["later"])
    assert a.get("later") == b"here"


def test_a_member_writes_only_its_own_keys(kits: Path, server: StoreServer) -> None:
    one, two = client(kits, server), client(kits, server, "hospital_2")
    one.set("e0/pg/@hospital_1/link", "10.0.0.1:5000")
    for write in (lambda: two.set("e0/pg/@hospital_1/link", "10.6.6.6:1"),
                  lambda: two.delete_key("e0/pg/@hospital_1/link"),
                  lambda: two.add("@hospital_1/arrived", 1),
                  lambda: two.compare_set("e0/pg/@hospital_1/link", "10.0.0.1:5000", "x"),
                  lambda: two.multi_set(["ok", "@hospital_1/join"], ["1", "1"])):
        with pytest.raises(StoreError, match="hospital_2 may not write"):
            write()
    assert two.get("e0/pg/@hospital_1/link") == b"10.0.0.1:5000"  # reading is fine
    assert not two.check(["ok"])  # a refused multi_set writes nothing
    with pytest.raises(StoreError, match="may not write '@hospital_1/@hospital_2/x'"):
        one.set("@hospital_1/@hospital_2/x", "1")


@pytest.mark.parametrize("key,who", [("a/b", None), ("e1/@hospital_3/arrived", "hospital_3"),
                                     ("@ttp", "ttp"), ("x@y/z", None)])
def test_owner_of_a_key(key: str, who: str | None) -> None:
    assert owner(key) == who


def test_outsiders_cannot_connect(kits: Path, server: StoreServer, tmp_path: Path) -> None:
    key, cert = identities.self_signed("fed-test", "hospital_1")
    outsider = impostor(kits, "hospital_1", key, cert, tmp_path)
    with pytest.raises(StoreError, match="the peer does not trust this federation's CA"):
        TlsStore(outsider, "127.0.0.1", server.port, "rendezvous", TIMEOUT).set("x", "1")
    deadline = time.monotonic() + 5
    while not server.refused and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert server.refused[0].reason == "certificate refused (self-signed certificate)"
    assert not server.local_check("x")


def test_a_client_refuses_a_server_that_is_not_the_store_host(kits: Path) -> None:
    fake = StoreServer(member(kits, "hospital_2"), "127.0.0.1", 0)
    with pytest.raises(StoreError, match="certificate of hospital_2, expected rendezvous"):
        TlsStore(member(kits, "hospital_1"), "127.0.0.1", fake.port, "rendezvous", TIMEOUT)
    fake.close()


def test_garbage_clients_do_not_block_the_store(kits: Path, server: StoreServer,
                                                monkeypatch) -> None:
    monkeypatch.setattr(store_module, "HANDSHAKE_TIMEOUT_S", 1.0)
    silent = [raw_connection(server.port, close=False) for _ in range(10)]
    for _ in range(30):
        raw_connection(server.port, os.urandom(500))
    a = client(kits, server)
    a.set("still", "works")
    assert client(kits, server, "hospital_0").get("still") == b"works"
    for sock in silent:
        sock.close()
