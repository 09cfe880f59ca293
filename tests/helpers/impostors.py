"""An attacker host next to an honest federation: outsiders and a stolen kit try to get in.

Run inside its own network namespace while the honest nodes train (tests/test_netns_nodes.py):

    python -m helpers.impostors RENDEZVOUS_HOST:PORT PUBLIC_DIR STOLEN_KIT OTHER_KIT WORK OUT

It repeats four attacks until ``WORK/stop`` exists and writes every outcome to OUT (JSON):

- ``self-signed``: a certificate with hospital_1's names, signed by itself, at the store;
- ``other-federation``: a valid kit of another federation, at the store;
- ``stolen-kit-as-rank-1``: hospital_2's real kit (stolen), which the store must accept (it is a
  member) but which may neither write hospital_1's keys nor open a link to hospital_0 as rank 1;
- ``plain-tcp``: plain TCP clients hammering the rendezvous port with garbage and silence.

PUBLIC_DIR holds what an outsider can know: the federation's ``ca.crt`` and ``federation.json``.
"""

from __future__ import annotations

import datetime
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from crypten_fl.fedtrain.identity import certificates as certs
from crypten_fl.fedtrain.identity import load_kit
from crypten_fl.fedtrain.transport.channels import Credentials, PeerRefused
from crypten_fl.fedtrain.transport.join import credentials_from_kit
from crypten_fl.fedtrain.transport.mesh import dial
from crypten_fl.fedtrain.transport.store import TlsStore

from helpers import identities

#: where hospital_0 publishes its link listener in the first world (fedtrain/transport/
#: process_group.py, under the prefix torch and fedtrain/secure/group.py give the world's store)
LINK_KEY = "e0/pg//0//cpu//@{member}/link"
WAIT = datetime.timedelta(seconds=5)


def _store(credentials: Credentials, host: str, port: int) -> TlsStore:
    return TlsStore(credentials, host, port, "hospital_0", WAIT, connect_deadline_s=5)


def _outcome(attempt: Callable[[], str]) -> str:
    """What happened: ``accepted: …`` only if the attack got through."""
    try:
        return attempt()
    except (PeerRefused, RuntimeError, OSError, ValueError) as err:
        return f"refused: {err}"


def _forged(public: Path, work: Path, federation_id: str) -> Credentials:
    key, cert = identities.self_signed(federation_id, "hospital_1")
    (work / "forged.key").write_bytes(certs.key_pem(key))
    (work / "forged.crt").write_bytes(certs.cert_pem(cert))
    return Credentials(me="hospital_1", federation_id=federation_id, cert=work / "forged.crt",
                       key=work / "forged.key", ca=public / "ca.crt",
                       identify=lambda der: "hospital_0")


def _at_the_store(credentials: Credentials, host: str, port: int) -> Callable[[], str]:
    def attempt() -> str:
        store = _store(credentials, host, port)
        return f"accepted: read {store.get(LINK_KEY.format(member='hospital_0'))!r}"
    return attempt


class StolenKit:
    """hospital_2's real kit in an attacker's hands: a member, so the store lets it in."""

    def __init__(self, credentials: Credentials, host: str, port: int) -> None:
        self.credentials, self.host, self.port = credentials, host, port
        self.store: TlsStore | None = None

    def _connected(self) -> TlsStore:
        if self.store is None:
            self.store = _store(self.credentials, self.host, self.port)
        return self.store

    def write_hospital_1s_key(self) -> str:
        self._connected().set(LINK_KEY.format(member="hospital_1"),
                              json.dumps({"host": "10.0.0.66", "port": 1, "nonce": "x"}))
        return "accepted: wrote hospital_1's link address"

    def link_as_rank_1(self) -> str:
        """As soon as hospital_0 publishes its link listener: open a link to it as rank 1."""
        store = self._connected()
        key = LINK_KEY.format(member="hospital_0")
        store.wait([key], datetime.timedelta(seconds=60))
        info = json.loads(store.get(key))
        hello = {"federation": self.credentials.federation_id, "rank": 1, "nonce": info["nonce"]}
        dial(self.credentials, info["host"], int(info["port"]), "hospital_0", hello,
             time.monotonic() + 5, 5)
        return "accepted: a link to hospital_0 as rank 1"


def _hammer(host: str, port: int) -> str:
    """Ten plain TCP clients: five send garbage, five connect and stay silent for a second."""
    socks = []
    for i in range(10):
        sock = socket.create_connection((host, port), timeout=5)
        if i % 2 == 0:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)) * 4)
        socks.append(sock)
    time.sleep(1.0)
    for sock in socks:
        sock.close()
    return "sent (the honest run must not notice)"


def main(argv: list[str]) -> None:
    rendezvous, public, stolen, other, work, out = argv
    host, port_text = rendezvous.rsplit(":", 1)
    port = int(port_text)
    public, work = Path(public), Path(work)
    federation_id = json.loads((public / "federation.json").read_text())["federation_id"]
    thief = StolenKit(credentials_from_kit(load_kit(Path(stolen))), host, port)
    attacks: list[tuple[str, Callable[[], str]]] = [
        ("self-signed", _at_the_store(_forged(public, work, federation_id), host, port)),
        ("other-federation", _at_the_store(credentials_from_kit(load_kit(Path(other))),
                                           host, port)),
        ("stolen-kit-writes-hospital_1s-key", thief.write_hospital_1s_key),
        ("plain-tcp", lambda: _hammer(host, port)),
        ("stolen-kit-as-rank-1", thief.link_as_rank_1),
    ]
    outcomes: dict[str, list[str]] = {}
    _await_store(host, port)  # attack from the moment the rendezvous port opens
    while not (work / "stop").exists():
        for name, attempt in attacks:
            outcomes.setdefault(name, []).append(_outcome(attempt))
        Path(out).write_text(json.dumps(outcomes, indent=1))
        time.sleep(0.5)
    Path(out).write_text(json.dumps(outcomes, indent=1))


def _await_store(host: str, port: int) -> None:
    while True:
        try:
            socket.create_connection((host, port), timeout=5).close()
            return
        except OSError:
            time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1:])
