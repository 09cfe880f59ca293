"""Pairwise key agreement: X25519 Diffie–Hellman with HKDF-SHA256, as in SecAgg.

Only public keys cross the network, so pair keys stay secret from a passive network observer and
from every party outside the pair. In a federation every public key is announced with a signature
by its member's certificate key over (session, rank, member, key) and checked against the
member's certificate in federation.json (:func:`announce`, :func:`accept`): a substituted key is
refused, whoever relayed it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from crypten_fl.fedtrain.identity import Federation

PUBLIC_KEY_BYTES = 32
ANNOUNCEMENT_BYTES = 112  # public key, signature length (u16) and an ECDSA P-256 signature, padded


class ForgedKey(Exception):
    """A public key whose signature does not verify (deliberately not a RuntimeError: it is an
    attack or a misconfiguration, not a peer that dropped out)."""


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...


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


def _statement(session: bytes, rank: int, member: str, public: bytes) -> bytes:
    return b"crypten-fl x25519 v1|" + session + f"|{rank}|{member}|".encode() + public


def announce(keypair: KeyPair, session: bytes, rank: int, member: str,
             signer: Signer | None) -> bytes:
    """The fixed-size announcement of ``keypair``'s public key (signed when ``signer`` is set)."""
    public = keypair.public_bytes
    signature = signer.sign(_statement(session, rank, member, public)) if signer else b""
    body = public + len(signature).to_bytes(2, "big") + signature
    if len(body) > ANNOUNCEMENT_BYTES:
        raise ValueError("signature too long for a key announcement")
    return body + bytes(ANNOUNCEMENT_BYTES - len(body))


def accept(announcement: bytes, session: bytes, rank: int, member: str,
           federation: Federation | None) -> bytes:
    """The public key in a peer's announcement; with ``federation``, only if ``member`` signed
    it for this session and rank (ForgedKey otherwise)."""
    public = announcement[:PUBLIC_KEY_BYTES]
    n = int.from_bytes(announcement[PUBLIC_KEY_BYTES:PUBLIC_KEY_BYTES + 2], "big")
    signature = announcement[PUBLIC_KEY_BYTES + 2:PUBLIC_KEY_BYTES + 2 + n]
    if federation is not None:
        try:
            federation.verify(member, _statement(session, rank, member, public), signature)
        except Exception as err:
            raise ForgedKey(f"the key-agreement public key of {member} (rank {rank}) is not "
                            f"signed by {member}: {err}") from None
    return public
