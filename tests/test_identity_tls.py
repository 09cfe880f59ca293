"""Kit.ssl_context over loopback: members of the federation meet over TLS 1.3 and identify each
other; a member of another federation, a client without a certificate or TLS 1.2 do not get in."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from crypten_fl.fedtrain.identity import Federation, Kit, load_kit
from helpers.identities import kits


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tls")
    kits(root, 2, ttp=False)
    kits(root, 2, ttp=False, out="other")  # same id and names, another CA
    return root


def _kit(root: Path, federation: str, member: str) -> Kit:
    return load_kit(root / federation / member)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[object, object]:
    """(server side, client side): the peer's DER certificate, or the exception raised."""
    listener = socket.create_server(("127.0.0.1", 0))
    result: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                result["server"] = tls.getpeercert(binary_form=True)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as err:
            result["server"] = err

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client.wrap_socket(raw) as tls:
            tls.recv(2)  # TLS 1.3: the server's verdict on our certificate arrives after
            result["client"] = tls.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError) as err:
        result["client"] = err
    thread.join(10)
    listener.close()
    return result["server"], result["client"]


def test_two_members_meet_and_identify_each_other(root: Path) -> None:
    server, client = _kit(root, "kits", "hospital_0"), _kit(root, "kits", "hospital_1")
    seen_by_server, seen_by_client = handshake(server.ssl_context(True), client.ssl_context(False))
    fed: Federation = server.federation
    assert isinstance(seen_by_server, bytes) and isinstance(seen_by_client, bytes)
    assert fed.identify(seen_by_server).name == "hospital_1"
    assert fed.identify(seen_by_client).name == "hospital_0"


def test_the_contexts_speak_tls_1_3_only(root: Path) -> None:
    context = _kit(root, "kits", "hospital_0").ssl_context(True)
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_a_member_of_another_federation_cannot_connect(root: Path) -> None:
    """Even one that trusts our CA (so that it gets as far as showing its certificate)."""
    server = _kit(root, "kits", "hospital_0")
    intruder = _kit(root, "other", "hospital_1").ssl_context(False)
    intruder.load_verify_locations(cafile=server.ca_path)
    seen_by_server, _ = handshake(server.ssl_context(True), intruder)
    assert isinstance(seen_by_server, ssl.SSLError)
    assert "certificate verify failed" in str(seen_by_server)


def test_a_member_refuses_a_server_of_another_federation(root: Path) -> None:
    impostor = _kit(root, "other", "hospital_0").ssl_context(True)
    client = _kit(root, "kits", "hospital_1").ssl_context(False)
    _, seen_by_client = handshake(impostor, client)
    assert isinstance(seen_by_client, ssl.SSLError)
    assert "certificate verify failed" in str(seen_by_client)


def test_a_client_without_a_certificate_is_refused(root: Path) -> None:
    server = _kit(root, "kits", "hospital_0")
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cafile=server.ca_path)
    seen_by_server, seen_by_client = handshake(server.ssl_context(True), anonymous)
    assert isinstance(seen_by_server, ssl.SSLError) and "certificate" in str(seen_by_server)
    assert isinstance(seen_by_client, ssl.SSLError | OSError)


def test_a_tls_1_2_client_is_refused(root: Path) -> None:
    server = _kit(root, "kits", "hospital_0")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(cafile=server.ca_path)
    old.load_cert_chain(server.cert_path, server.key_path)
    seen_by_server, seen_by_client = handshake(server.ssl_context(True), old)
    assert isinstance(seen_by_server, ssl.SSLError)
    assert "UNSUPPORTED_PROTOCOL" in str(seen_by_server)
    assert isinstance(seen_by_client, ssl.SSLError)
