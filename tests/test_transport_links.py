"""The link frames of fedtrain/transport/links.py, attacked on the wire.

A sender's exact bytes are captured from one socket pair and replayed, modified, into another
socket pair whose far end is a real InLink: every modification must break the link with an
authentication error, and nothing of the modified message may be delivered.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import torch
from crypten_fl.fedtrain.transport.links import (
    COLLECTIVE,
    FRAME,
    P2P,
    InLink,
    LinkError,
    OutLink,
    as_bytes,
)

KEY = os.urandom(32)


def captured(messages: list[tuple[int, int, torch.Tensor]], key: bytes = KEY) -> bytes:
    """The exact bytes an OutLink puts on the wire for ``messages`` (kind, seq, tensor)."""
    a, b = socket.socketpair()
    out = OutLink(a, "hospital_0", key, timeout_s=5)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: b.recv(1 << 20), b"")))
    reader.start()
    for kind, seq, tensor in messages:
        out.send(kind, 7, seq, as_bytes(tensor))
    out.close()
    reader.join(5)
    return b"".join(chunks)


def receive(wire: bytes, key: bytes = KEY) -> InLink:
    """An InLink fed ``wire`` (then EOF)."""
    a, b = socket.socketpair()
    link = InLink(b, "hospital_0", key)
    a.sendall(wire)
    a.shutdown(socket.SHUT_WR)
    return link


def frames(wire: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(wire):
        n = int.from_bytes(wire[at:at + 4], "big")
        out.append(wire[at:at + 4 + n])
        at += 4 + n
    return out


def deadline(s: float = 5.0) -> float:
    return time.monotonic() + s


def test_messages_arrive_exactly_small_and_large() -> None:
    small = torch.arange(5, dtype=torch.int64)
    large = torch.randn(FRAME // 8 * 2 + 123, dtype=torch.float64)  # three frames
    link = receive(captured([(COLLECTIVE, 1, small), (COLLECTIVE, 2, large)]))
    assert torch.equal(link.take(7, 1, deadline()).view(torch.int64), small)
    assert torch.equal(link.take(7, 2, deadline()).view(torch.float64), large)


def test_the_wire_holds_no_plaintext() -> None:
    secret = torch.full((4096,), 0x1122334455667788, dtype=torch.int64)
    wire = captured([(COLLECTIVE, 1, secret)])
    assert (0x1122334455667788).to_bytes(8, "little") not in wire
    assert len(wire) == sum(4 + 16 + n for n in (21, 4096 * 8))  # length, tag, plaintext


@pytest.mark.parametrize("attack", ["flip a payload bit", "flip a length bit", "drop a frame",
                                    "replay a frame", "swap two frames", "wrong key",
                                    "truncate"])
def test_every_modification_breaks_the_link(attack: str) -> None:
    messages = [(COLLECTIVE, s, torch.full((10,), s + 0.0, dtype=torch.float64))
                for s in (1, 2, 3)]
    parts = frames(captured(messages))
    key = KEY
    if attack == "flip a payload bit":
        bad = bytearray(parts[3])
        bad[-20] ^= 1
        parts[3] = bytes(bad)
    elif attack == "flip a length bit":
        bad = bytearray(parts[3])
        bad[3] ^= 1
        parts[3] = bytes(bad)
    elif attack == "drop a frame":
        del parts[2]
    elif attack == "replay a frame":
        parts.insert(3, parts[1])
    elif attack == "swap two frames":
        parts[2], parts[4] = parts[4], parts[2]
    elif attack == "wrong key":
        key = os.urandom(32)
    link = receive(b"".join(parts)[:-5] if attack == "truncate" else b"".join(parts), key)
    delivered = []
    with pytest.raises(LinkError) as err:
        for seq in (1, 2, 3):
            delivered.append(link.take(7, seq, deadline()))
    # a frame that fails authentication, or one whose length gives the damage away first
    reasons = ("closed by peer",) if attack == "truncate" else (
        "failed authentication", "tampered or out of step")
    assert any(r in str(err.value) for r in reasons), str(err.value)
    # what came before the damage is intact; nothing after it was delivered
    assert all(torch.equal(t.view(torch.float64), torch.full((10,), s + 1.0, dtype=torch.float64))
               for s, t in enumerate(delivered))
    assert len(delivered) < 3


def test_point_to_point_receives_complete_in_order_and_time_out() -> None:
    first, second = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    a, b = socket.socketpair()
    out, link = OutLink(a, "hospital_1", KEY, 5), InLink(b, "hospital_1", KEY)
    early = torch.zeros(2)
    posted = link.post_recv(7, 0, early, deadline())  # posted before the message arrives
    out.send(P2P, 7, 0, as_bytes(first))
    out.send(P2P, 7, 0, as_bytes(second))  # arrives before its receive is posted
    posted.wait()
    late = torch.zeros(2)
    link.post_recv(7, 0, late, deadline()).wait()
    assert torch.equal(early, first) and torch.equal(late, second)
    never = link.post_recv(7, 0, torch.zeros(2), time.monotonic() + 0.2)
    with pytest.raises(RuntimeError, match="timed out waiting for hospital_1"):
        never.wait()
    out.close()


def test_a_dead_peer_fails_pending_and_later_receives() -> None:
    a, b = socket.socketpair()
    link = InLink(b, "hospital_2", KEY)
    pending = link.post_recv(7, 0, torch.zeros(3), deadline())
    a.close()
    with pytest.raises(RuntimeError, match="connection from hospital_2 closed by peer"):
        pending.wait()
    with pytest.raises(LinkError, match="closed by peer"):
        link.take(7, 1, deadline())
