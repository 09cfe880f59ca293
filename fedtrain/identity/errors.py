"""The error a peer's identity raises when it fails verification."""

from __future__ import annotations


class IdentityError(Exception):
    """A peer's certificate or signature failed verification.

    ``reason`` is short and names no secret ("certificate expired on …"); the transport turns it
    into a one-line refusal naming the peer's address.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
