"""Test helpers for fedtrain.secure.psi: a reference X25519 ladder and recorded party views."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from crypten_fl.fedtrain.secure import psi

P, A24 = psi.P, (psi.A - 2) // 4
#: order of Curve25519's prime-order subgroup (the curve has 8 × ORDER points)
ORDER = 2**252 + 27742317777372353535851937790883648493


def ladder(k: int, u: int) -> int | None:
    """x-only Montgomery ladder (RFC 7748): u([k]P), or None for the point at infinity."""
    x2, z2, x3, z3 = 1, 0, u, 1
    for t in reversed(range(k.bit_length())):
        if (k >> t) & 1:
            x2, x3, z2, z3 = x3, x2, z3, z2
        a, b, c, d = x2 + z2, x2 - z2, x3 + z3, x3 - z3
        aa, bb, da, cb = a * a % P, b * b % P, d * a % P, c * b % P
        e = aa - bb
        x3, z3 = (da + cb) ** 2 % P, u * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + A24 * e) % P
        if (k >> t) & 1:
            x2, x3, z2, z3 = x3, x2, z3, z2
    return None if z2 % P == 0 else x2 * pow(z2, P - 2, P) % P


def clamp(secret: bytes) -> int:
    """The scalar X25519 uses for a 32-byte secret."""
    k = bytearray(secret)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    return int.from_bytes(k, "little")


@dataclass
class View:
    """Everything one party saw: its secrets and the messages it received (peer, payload)."""

    secrets: list[bytes] = field(default_factory=list)
    received: list[tuple[int, bytes]] = field(default_factory=list)


def run_recorded(key_lists: list[list[str]], label_party: int, monkeypatch: Any
                 ) -> tuple[list[psi.AlignmentResult], list[View]]:
    """``align_local`` with every party's secrets and received messages recorded."""
    views = [View() for _ in key_lists]
    local = threading.local()
    original = psi.new_secret

    def recording_secret() -> bytes:
        secret = original()
        views[local.rank].secrets.append(secret)
        return secret

    class Recording:
        def __init__(self, rank: int, inner: psi.Channel) -> None:
            self.rank, self.inner = rank, inner
            local.rank = rank  # the wrapper is made in the party's own thread

        def send(self, peer: int, payload: bytes) -> None:
            self.inner.send(peer, payload)

        def recv(self, peer: int) -> bytes:
            payload = self.inner.recv(peer)
            views[self.rank].received.append((peer, payload))
            return payload

    monkeypatch.setattr(psi, "new_secret", recording_secret)
    results = psi.align_local(key_lists, label_party, timeout_s=30, channel_wrapper=Recording)
    return results, views


def recognisable(view: View, key: str) -> bool:
    """Could this party confirm a guess of ``key`` against what it received?

    From a guess it can compute the key's bytes (text and hex-decoded), H(key) and H(key)^s for
    each of its own secrets s; the guess is confirmed if any of these occurs in a received message.
    """
    h = psi.hash_to_curve(key)
    guesses = [key.encode(), h, *(psi.blind(s, [h])[0] for s in view.secrets)]
    with contextlib.suppress(ValueError):
        guesses.append(bytes.fromhex(key))
    return any(g and g in payload for g in guesses for _, payload in view.received)
