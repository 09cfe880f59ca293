"""Pairwise zero-sum masks (Bonawitz et al., CCS 2017), generated with AES-CTR.

Every pair of parties (i, j) that are neighbours in the mask graph shares a 128-bit key. For the
c-th secure sum they both expand it into the same pseudo-random int64 vector m_ij; party i adds it
if i < j and subtracts it otherwise. Summed over all parties the masks cancel exactly modulo 2^64,
so the masked vectors are additive secret shares of the sum in CrypTen's ring, while each single
masked vector is uniformly distributed to anyone who does not hold all of its party's pair keys.
"""

from __future__ import annotations

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def neighbours(rank: int, world_size: int, degree: int | None = None) -> list[int]:
    """Mask-graph neighbours of ``rank``: all other parties, or a circulant graph of ``degree``.

    With the complete graph a party's update stays hidden unless all other parties collude; with
    degree k it stays hidden unless all k of its neighbours collude (SecAgg+, Bell et al. 2020).
    """
    others = [r for r in range(world_size) if r != rank]
    if degree is None or degree >= world_size - 1:
        return others
    if degree < 2 or degree % 2:
        raise ValueError("mask-graph degree must be an even number >= 2")
    half = degree // 2
    ring = {(rank + d) % world_size for d in range(1, half + 1)}
    ring |= {(rank - d) % world_size for d in range(1, half + 1)}
    return sorted(ring)


class Scratch:
    """Reusable buffers for masks of one length (fresh 8 MB buffers page-fault on every call,
    which costs several times the AES itself on this kind of VM)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.zeros = np.zeros(8 * n, dtype=np.uint8)
        self.stream = np.empty(8 * n + 16, dtype=np.uint8)  # update_into needs a block of slack

    def keystream(self, key: bytes, counter: int) -> np.ndarray:
        """AES-128-CTR keystream of n int64 values (a view into the reused buffer)."""
        iv = counter.to_bytes(8, "big") + bytes(8)
        encryptor = Cipher(algorithms.AES(key[:16]), modes.CTR(iv)).encryptor()
        written = encryptor.update_into(self.zeros, self.stream)
        return self.stream[:written].view(np.int64)


def expand(key: bytes, counter: int, n: int) -> torch.Tensor:
    """AES-128-CTR keystream of ``n`` int64 values for the ``counter``-th use of ``key``.

    The IV holds the counter in its high 8 bytes and the block index in its low 8 bytes, so
    different counters never reuse keystream.
    """
    return torch.from_numpy(Scratch(n).keystream(key, counter).copy())


def add_mask(total: np.ndarray, rank: int, pair_keys: dict[int, bytes], counter: int,
             scratch: Scratch | None = None) -> None:
    """Add this party's total mask Σ_j ±m_ij to the int64 vector ``total`` in place
    (+ if rank < j, − otherwise; int64 arithmetic wraps modulo 2^64)."""
    scratch = scratch if scratch is not None and scratch.n == total.size else Scratch(total.size)
    for peer, key in sorted(pair_keys.items()):
        ufunc = np.add if rank < peer else np.subtract
        ufunc(total, scratch.keystream(key, counter), out=total)


def mask(rank: int, pair_keys: dict[int, bytes], counter: int, n: int) -> torch.Tensor:
    """This party's total mask as a new tensor (see :func:`add_mask`)."""
    total = np.zeros(n, dtype=np.int64)
    add_mask(total, rank, pair_keys, counter)
    return torch.from_numpy(total)
