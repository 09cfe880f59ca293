"""Pairwise key agreement: X25519 Diffie–Hellman with HKDF-SHA256, as in SecAgg.

Only public keys cross the network, so pair keys stay secret from a passive network observer and
from every party outside the pair (the seeds CrypTen itself exchanges travel in the clear).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PUBLIC_KEY_BYTES = 32


class KeyPair:
    """One party's X25519 key pair for a session."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()

    @property
    def public_bytes(self) -> bytes:
        """Raw 32-byte public key."""
        return self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def pair_key(self, my_rank: int, peer_rank: int, peer_public: bytes, session: bytes) -> bytes:
        """16-byte AES key shared with ``peer_rank`` (both sides derive the same key)."""
        secret = self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        low, high = sorted((my_rank, peer_rank))
        info = b"crypten-fl mask " + session + f" {low}-{high}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(secret)
