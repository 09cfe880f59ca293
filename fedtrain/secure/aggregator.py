"""Secure aggregation between hospital processes, built on CrypTen's arithmetic secret sharing.

``SecureAggregator.sum(x)`` returns Σ_parties x and nothing else. Each party turns its vector into
an additive share of the sum in CrypTen's ring Z_2^64 (CrypTen's fixed-point encoding + pairwise
zero-sum masks, see masks.py), and the sum of the shares is revealed with the all-reduce of
CrypTen's communicator — what ``ArithmeticSharedTensor.from_shares(share).reveal()`` does, but in
place: CrypTen's reveal copies the vector twice, and on this kind of VM the page faults of those
copies cost more than the masks. This is the sum CrypTen's textbook recipe computes
(``cryptensor(x, src=p)`` for every p, add, reveal) with the same share distribution, at 1/N of
its cost: the sum of N zero-sharings is one zero-sharing, so each party makes one share, not N.

``PlainAggregator`` is the insecure baseline (a plain float64 all-reduce) used by ``--plain``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.secure import fixed_point, group, keys, masks, reveal_audit
from crypten_fl.fedtrain.secure.keys import KeyPair
from crypten_fl.fedtrain.secure.reveal_audit import revealing
from crypten_fl.fedtrain.transport import join as transport

#: failures of a collective that mean a peer died or went silent (gloo raises RuntimeError,
#: torch.distributed.DistBackendError derives from it)
PeerFailure = RuntimeError


@dataclass
class AggregationStats:
    """What aggregation cost this party: calls, elements, seconds, bytes.

    ``bytes_communicated`` is CrypTen's communicator count for this party (sent + received; an
    all-reduce counts 2 × 8 bytes per element); the plain baseline is counted the same way.
    """

    calls: int = 0
    elements: int = 0
    seconds: float = 0.0
    bytes_communicated: int = 0
    setup_bytes: int = 0
    per_call: list[dict[str, float]] = field(default_factory=list)


def _comm_bytes() -> int:
    """CrypTen's byte count for this party, over every generation of its secure group."""
    secure_group = group.current()
    if secure_group is not None:
        return secure_group.comm_totals().bytes
    return int(crypten.communicator.get().get_communication_stats()["bytes"])


class _Buffers:
    """Reused per-length buffers: the int64 share, a float64 scratch, the mask keystreams."""

    def __init__(self, n: int) -> None:
        self.share = np.empty(n, dtype=np.int64)
        self.scaled = np.empty(n, dtype=np.float64)
        self.masks = masks.Scratch(n)


def reveal_sum(share: torch.Tensor) -> None:
    """CrypTen's reveal of an arithmetic sharing, in place: all-reduce the shares over CrypTen's
    main group; logged in CrypTen's communication statistics (2 × 8 bytes per element, as
    CrypTen counts its all-reduce) and in the reveal reveal_audit."""
    comm = crypten.communicator.get()
    reveal_audit.record(None, share.numel())
    if comm.get_world_size() > 1:
        if crypten.cfg.communicator.verbose:
            comm._log_communication(2 * share.numel())
        torch.distributed.all_reduce(share, group=comm.main_group)


class SecureAggregator:
    """Sums vectors across all parties; only the sum is revealed.

    Args:
        degree: mask-graph degree (None = every pair of parties; see masks.neighbours).
        precision_bits: fixed-point fractional bits (values are exact to 2^-precision_bits per
            party; magnitudes up to 2^(62 - precision_bits)).
    """

    secure = True

    def __init__(self, degree: int | None = None, precision_bits: int = 16) -> None:
        self.precision_bits = precision_bits
        self.degree = degree
        self.stats = AggregationStats()
        self.group = group.current()
        self._completed = 0  # secure sums this party has obtained (the catch-up index)
        self._last: torch.Tensor | None = None  # the latest sum, kept for a peer's catch-up
        self._buffers: dict[int, _Buffers] = {}
        self.rekey()

    def rekey(self) -> None:
        """Fresh pair keys for the current group (at start and after every re-forming)."""
        comm = crypten.communicator.get()
        self.rank, self.world_size = comm.get_rank(), comm.get_world_size()
        self._counter = 0
        self._pair_keys = self._agree_keys()

    @property
    def tolerant(self) -> bool:
        """Whether a failed sum is retried by the hospitals that remain."""
        return self.group is not None and self.group.tolerant

    def _agree_keys(self) -> dict[int, bytes]:
        """X25519 key agreement: all-gather signed public keys, derive a key with each
        neighbour. With a federation kit every public key is signed by its member's certificate
        key and checked against that member's certificate (fedtrain/secure/keys.py), so nobody
        on the way (a relaying peer, the network) can substitute one."""
        before = _comm_bytes()
        session = os.environ.get("CRYPTEN_FL_SESSION", "default").encode()
        if self.group is not None:  # never the same keys in two generations of the group
            session += f" epoch {self.group.epoch}".encode()
        keypair = KeyPair()
        names = self._member_names()
        kit = transport.kit()
        mine = keys.announce(keypair, session, self.rank, names[self.rank], kit)
        gathered = crypten.communicator.get().all_gather(
            torch.frombuffer(bytearray(mine), dtype=torch.int64).clone())
        federation = kit.federation if kit is not None else None
        publics = {r: keys.accept(t.numpy().tobytes(), session, r, names[r], federation)
                   for r, t in enumerate(gathered) if r != self.rank}
        peers = masks.neighbours(self.rank, self.world_size, self.degree)
        pair_keys = {p: keypair.pair_key(self.rank, p, publics[p], session) for p in peers}
        self.stats.setup_bytes = _comm_bytes() - before + len(mine) * (self.world_size - 1)
        return pair_keys

    def _member_names(self) -> list[str]:
        """The federation member behind each CrypTen rank of the current world."""
        if self.group is not None:
            return [f"hospital_{m}" for m in self.group.members]
        return [f"hospital_{r}" for r in range(self.world_size)]

    def _scratch(self, n: int) -> _Buffers:
        if n not in self._buffers:
            if len(self._buffers) >= 4:  # model, moments, histograms, heads: a few sizes only
                self._buffers.pop(next(iter(self._buffers)))
            self._buffers[n] = _Buffers(n)
        return self._buffers[n]

    def share(self, x: torch.Tensor, precision_bits: int | None = None) -> torch.Tensor:
        """This party's additive share of Σ x: encode(x) + its pairwise masks (int64 ring).

        The returned tensor is a view of a reused buffer, valid until the next call.
        """
        buffers = self._scratch(x.numel())
        share = fixed_point.encode(x.reshape(-1), precision_bits or self.precision_bits,
                                   out=buffers.share, scratch=buffers.scaled)
        masks.add_mask(buffers.share, self.rank, self._pair_keys, self._counter, buffers.masks)
        self._counter += 1
        return share

    def sum(self, x: torch.Tensor, precision_bits: int | None = None, what: str = "sum"
            ) -> torch.Tensor:
        """Σ over parties of ``x`` (same shape at every party), as float64.

        ``precision_bits`` overrides the fractional bits for this call (fewer bits, larger range);
        ``what`` names the revealed sum for the reveal audit (fedtrain/secure/reveal_audit.py).
        """
        bits = precision_bits or self.precision_bits
        start, before = time.perf_counter(), _comm_bytes()
        total: torch.Tensor | None = None
        while total is None:
            failure = None
            try:
                share = self.share(x, bits)
                with revealing(what):
                    reveal_sum(share)
                total = fixed_point.decode(share, bits).reshape(x.shape)
            except PeerFailure as err:
                if not self.tolerant:
                    raise
                # only the message leaves this block: the traceback would keep the broken
                # process group (and its sockets) alive, and peers waiting on them would hang
                failure = f"{type(err).__name__}: {err}".splitlines()[0]
            if failure is not None:
                total = self._recover(failure, x.shape, what)
        self._completed += 1
        if self.tolerant:
            self._last = total.clone()
        self._record(x.numel(), time.perf_counter() - start, _comm_bytes() - before)
        return total

    def _recover(self, failure: str, shape: torch.Size, what: str) -> torch.Tensor | None:
        """After a failed sum: re-form the group, bring every member to the same sum, re-key.

        A sum is all-or-nothing for each party, but a party may have obtained sum c while a
        peer failed inside it; then the ones ahead (who hold sum c, which every member was due
        to obtain anyway) hand it to the others, and everyone retries sum c + 1. Returns sum c
        to a party that was behind, None to one that must retry its current sum. The failed
        attempt's masks are never reused or revealed: the new group agrees on fresh keys.
        """
        assert self.group is not None
        for _attempt in range(len(self.group.members)):
            members = list(self.group.members)
            self.group.reform(failure)
            try:
                return self._catch_up(shape, what)
            except PeerFailure as again:  # someone else failed while re-forming
                if self.group.members == members:
                    raise  # nobody dropped out, yet the group keeps failing: not a dropout
                failure = f"{type(again).__name__}: {again}".splitlines()[0]
        raise RuntimeError(f"secure group kept failing: {failure}")

    def _catch_up(self, shape: torch.Size, what: str) -> torch.Tensor | None:
        comm = crypten.communicator.get()
        counts = torch.tensor([self._completed], dtype=torch.int64)
        gathered = [int(c) for c in comm.all_gather(counts)]
        ahead = max(gathered)
        caught_up = None
        if ahead > min(gathered):
            source = gathered.index(ahead)
            if self._completed == ahead:
                payload = self._last.reshape(-1).to(torch.float64)  # type: ignore[union-attr]
            else:  # obtains the sum every member was due to obtain in the failed call
                payload = torch.empty(shape.numel(), dtype=torch.float64)
                with revealing(what):
                    reveal_audit.record(None, payload.numel())
            torch.distributed.broadcast(payload, src=source, group=comm.main_group)
            if self._completed < ahead:
                caught_up = payload.reshape(shape)
        self.rekey()
        return caught_up

    def weighted_mean(self, x: torch.Tensor, weight: float, what: str = "weighted sum"
                      ) -> tuple[torch.Tensor, float]:
        """(Σ w_p x_p / Σ w_p, Σ w_p): one secure sum; the division happens on the revealed sum."""
        packed = torch.cat([x.reshape(-1).to(torch.float64) * weight, torch.tensor([weight])])
        total = self.sum(packed, what=what)
        total_weight = float(total[-1])
        if total_weight <= 0:
            raise RuntimeError("secure weighted mean: total weight is zero")
        return (total[:-1] / total_weight).reshape(x.shape), total_weight

    def _record(self, n: int, seconds: float, sent: int) -> None:
        self.stats.calls += 1
        self.stats.elements += n
        self.stats.seconds += seconds
        self.stats.bytes_communicated += sent
        self.stats.per_call.append({"elements": n, "seconds": seconds, "bytes": sent})


class PlainAggregator(SecureAggregator):
    """Insecure baseline: every party's float64 vector goes into a plain all-reduce."""

    secure = False

    def __init__(self, degree: int | None = None, precision_bits: int = 16) -> None:
        comm = crypten.communicator.get()
        self.rank, self.world_size = comm.get_rank(), comm.get_world_size()
        self.precision_bits, self.degree = precision_bits, degree
        self.stats = AggregationStats()
        self.group = None

    def sum(self, x: torch.Tensor, precision_bits: int | None = None, what: str = "sum"
            ) -> torch.Tensor:
        start = time.perf_counter()
        total = x.detach().to(torch.float64).clone()
        group = crypten.communicator.get().main_group
        torch.distributed.all_reduce(total, group=group)
        n = x.numel()
        self._record(n, time.perf_counter() - start, 2 * 8 * n if self.world_size > 1 else 0)
        return total
