"""Collective operations as point-to-point messages (the algorithms, free of any socket).

Every function takes a :class:`Wire` (send a message to a group rank, take the next message of a
collective from a group rank) and the collective's sequence number, which all members use for the
same call. Results are identical at every member, bit for bit, also for floating point: a direct
reduction adds the contributions in rank order, a ring reduction reduces each chunk once along
the ring and then passes the reduced chunks around.

Small tensors (and any tensor between two members) go directly from every member to every other
one: one message step. Large ones use the bandwidth-optimal ring (reduce-scatter, then
all-gather): each member sends 2(n-1)/n of the tensor instead of (n-1) times it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.distributed as dist
from crypten_fl.fedtrain.transport.links import as_bytes, recycle

RING_MIN_BYTES = int(__import__("os").environ.get("RING_MIN", 1 << 16))

Reduce = Callable[[torch.Tensor, torch.Tensor], None]


class Wire(Protocol):
    rank: int
    size: int

    def send(self, peer: int, seq: int, payload: memoryview) -> None: ...

    def take(self, peer: int, seq: int) -> torch.Tensor: ...


def reducer(op: dist.ReduceOp) -> Reduce:
    """In-place ``acc = acc (op) other`` for a torch.distributed reduce op."""
    table: dict[object, Reduce] = {
        dist.ReduceOp.SUM: lambda a, b: a.add_(b),
        dist.ReduceOp.PRODUCT: lambda a, b: a.mul_(b),
        dist.ReduceOp.MIN: lambda a, b: torch.minimum(a, b, out=a),
        dist.ReduceOp.MAX: lambda a, b: torch.maximum(a, b, out=a),
        dist.ReduceOp.BAND: lambda a, b: a.bitwise_and_(b),
        dist.ReduceOp.BOR: lambda a, b: a.bitwise_or_(b),
        dist.ReduceOp.BXOR: lambda a, b: a.bitwise_xor_(b),
    }
    for key, fn in table.items():
        if op == key:
            return fn
    raise NotImplementedError(f"reduce op {op} is not supported by the crypten-fl transport")


def _use(buf: torch.Tensor, like: torch.Tensor, fn: Reduce) -> None:
    """``fn(like, message)`` for a received message, then recycle its buffer."""
    fn(like, _typed(buf, like))
    recycle(buf)


def _copy(a: torch.Tensor, b: torch.Tensor) -> None:
    a.copy_(b)


def _typed(buf: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if buf.numel() != like.numel() * like.element_size():
        raise RuntimeError(f"collective message of {buf.numel()} bytes where "
                           f"{like.numel() * like.element_size()} were expected")
    return buf.view(like.dtype).reshape(like.shape)


def _others(wire: Wire) -> list[int]:
    return [r for r in range(wire.size) if r != wire.rank]


def broadcast(wire: Wire, seq: int, tensor: torch.Tensor, root: int) -> None:
    if wire.rank == root:
        payload = as_bytes(tensor)
        for peer in _others(wire):
            wire.send(peer, seq, payload)
    else:
        _use(wire.take(root, seq), tensor, _copy)


def all_reduce(wire: Wire, seq: int, tensor: torch.Tensor, op: dist.ReduceOp) -> None:
    if wire.size == 1:
        return
    fn = reducer(op)
    nbytes = tensor.numel() * tensor.element_size()
    if wire.size > 2 and nbytes >= RING_MIN_BYTES and tensor.numel() >= wire.size:
        _ring_all_reduce(wire, seq, tensor, fn)
        return
    payload = as_bytes(tensor)
    for peer in _others(wire):
        wire.send(peer, seq, payload)
    _combine(wire, seq, tensor, fn, wire.rank)


def _combine(wire: Wire, seq: int, tensor: torch.Tensor, fn: Reduce, own: int) -> None:
    """``tensor`` = the reduction of every member's contribution (``tensor`` holds rank
    ``own``'s). Exact integer and bitwise ops accumulate in place in arrival order; floating
    point adds in rank order, so that every member gets the same bits."""
    others = [r for r in range(wire.size) if r != own]
    if not tensor.is_floating_point() and not tensor.is_complex():
        for r in others:
            _use(wire.take(r, seq), tensor, fn)
        return
    bufs = {r: wire.take(r, seq) for r in others}
    parts = {r: _typed(buf, tensor) for r, buf in bufs.items()}
    if own == 0:
        for r in others:
            fn(tensor, parts[r])
    else:
        total = parts[0].clone()
        for r in range(1, wire.size):
            fn(total, tensor if r == own else parts[r])
        tensor.copy_(total)
    for buf in bufs.values():
        recycle(buf)


def _ring_all_reduce(wire: Wire, seq: int, tensor: torch.Tensor, fn: Reduce) -> None:
    work = tensor if tensor.is_contiguous() else tensor.contiguous()
    chunks = torch.tensor_split(work.reshape(-1), wire.size)
    n, r = wire.size, wire.rank
    nxt, prev = (r + 1) % n, (r - 1) % n
    for step in range(n - 1):  # reduce-scatter: rank r ends with chunk r + 1 fully reduced
        wire.send(nxt, seq, as_bytes(chunks[(r - step) % n]))
        _use(wire.take(prev, seq), chunks[(r - step - 1) % n], fn)
    for step in range(n - 1):  # all-gather of the reduced chunks
        wire.send(nxt, seq, as_bytes(chunks[(r + 1 - step) % n]))
        _use(wire.take(prev, seq), chunks[(r - step) % n], _copy)
    if work is not tensor:
        tensor.copy_(work)


def reduce(wire: Wire, seq: int, tensor: torch.Tensor, root: int, op: dist.ReduceOp) -> None:
    fn = reducer(op)
    if wire.rank != root:
        wire.send(root, seq, as_bytes(tensor))
        return
    _combine(wire, seq, tensor, fn, root)


def all_gather(wire: Wire, seq: int, outputs: list[torch.Tensor], tensor: torch.Tensor) -> None:
    payload = as_bytes(tensor)
    for peer in _others(wire):
        wire.send(peer, seq, payload)
    for r, out in enumerate(outputs):
        if r == wire.rank:
            out.copy_(tensor)
        else:
            _use(wire.take(r, seq), out, _copy)


def gather(wire: Wire, seq: int, outputs: list[torch.Tensor] | None, tensor: torch.Tensor,
           root: int) -> None:
    if wire.rank != root:
        wire.send(root, seq, as_bytes(tensor))
        return
    assert outputs is not None
    for r, out in enumerate(outputs):
        if r == root:
            out.copy_(tensor)
        else:
            _use(wire.take(r, seq), out, _copy)


def scatter(wire: Wire, seq: int, output: torch.Tensor, inputs: list[torch.Tensor] | None,
            root: int) -> None:
    if wire.rank != root:
        _use(wire.take(root, seq), output, _copy)
        return
    assert inputs is not None
    for peer in _others(wire):
        wire.send(peer, seq, as_bytes(inputs[peer]))
    output.copy_(inputs[root])


def barrier(wire: Wire, seq: int) -> None:
    all_reduce(wire, seq, torch.zeros(1, dtype=torch.uint8), dist.ReduceOp.SUM)
