"""The collective algorithms of fedtrain/transport/collectives.py, over in-memory wires.

Each member runs in its own thread with a wire of queues; the results are compared exactly with
the reduction torch computes directly, and across members bit for bit (also in floating point).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.distributed as dist
from crypten_fl.fedtrain.transport import collectives
from hypothesis import given, settings
from hypothesis import strategies as st


class QueueWire:
    """Wire of member ``rank``: one FIFO per (src, dst, seq)."""

    def __init__(self, hub: dict[tuple[int, int, int], queue.Queue], rank: int, size: int) -> None:
        self.hub, self.rank, self.size = hub, rank, size
        self.sent_bytes = 0

    def _q(self, src: int, dst: int, seq: int) -> queue.Queue:
        return self.hub.setdefault((src, dst, seq), queue.Queue())

    def send(self, peer: int, seq: int, payload: memoryview) -> None:
        self.sent_bytes += len(payload)
        data = bytearray(payload)
        message = (torch.frombuffer(data, dtype=torch.uint8) if data
                   else torch.empty(0, dtype=torch.uint8))
        self._q(self.rank, peer, seq).put(message)

    def take(self, peer: int, seq: int) -> torch.Tensor:
        return self._q(peer, self.rank, seq).get(timeout=10)


def run_members(size: int, job: Callable[[QueueWire], Any]) -> list[Any]:
    hub: dict[tuple[int, int, int], queue.Queue] = {}
    lock = threading.Lock()
    results: list[Any] = [None] * size
    errors: list[BaseException] = []

    def member(rank: int) -> None:
        try:
            with lock:
                wire = QueueWire(hub, rank, size)
            results[rank] = job(wire)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=member, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return results


def contribution(rank: int, n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 97 + rank)
    if dtype.is_floating_point:
        return (torch.randn(n, generator=gen, dtype=torch.float64) * 1e3).to(dtype)
    return torch.randint(-(1 << 62), 1 << 62, (n,), generator=gen, dtype=torch.int64).to(dtype)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 6), n=st.sampled_from([0, 1, 7, 1000, 20_000]),
       dtype=st.sampled_from([torch.int64, torch.float64, torch.float32, torch.int32]),
       seed=st.integers(0, 10_000))
def test_all_reduce_sum_is_exact_and_identical_everywhere(size: int, n: int, dtype: torch.dtype,
                                                          seed: int) -> None:
    def job(wire: QueueWire) -> torch.Tensor:
        t = contribution(wire.rank, n, dtype, seed)
        collectives.all_reduce(wire, 1, t, dist.ReduceOp.SUM)
        return t

    results = run_members(size, job)
    parts = [contribution(r, n, dtype, seed) for r in range(size)]
    if dtype.is_floating_point:
        # every member holds the same bits, and they are a correct sum (within rounding)
        for r in results[1:]:
            assert torch.equal(r.view(torch.uint8), results[0].view(torch.uint8))
        expected = torch.stack([p.double() for p in parts]).sum(0)
        assert torch.allclose(results[0].double(), expected, rtol=1e-5, atol=1e-2)
    else:
        expected = parts[0].clone()
        for p in parts[1:]:
            expected += p  # wraps modulo 2^bits, like the ring CrypTen computes in
        for r in results:
            assert torch.equal(r, expected)


def test_ring_is_used_for_large_tensors_and_sends_less() -> None:
    size, n = 4, 1 << 16  # 512 KiB of int64: above RING_MIN_BYTES
    sent: list[int] = []

    def job(wire: QueueWire) -> torch.Tensor:
        t = contribution(wire.rank, n, torch.int64, 3)
        collectives.all_reduce(wire, 1, t, dist.ReduceOp.SUM)
        sent.append(wire.sent_bytes)
        return t

    run_members(size, job)
    # ring: 2 (n-1)/n of the tensor per member; direct would be (n-1) times it
    assert sent == [2 * (size - 1) * (n * 8 // size)] * size


@pytest.mark.parametrize("op,fn", [
    (dist.ReduceOp.MAX, lambda s: s.max(0).values), (dist.ReduceOp.MIN, lambda s: s.min(0).values),
    (dist.ReduceOp.PRODUCT, lambda s: s.prod(0)),
    (dist.ReduceOp.BXOR, lambda s: s[0] ^ s[1] ^ s[2]),
    (dist.ReduceOp.BAND, lambda s: s[0] & s[1] & s[2]),
    (dist.ReduceOp.BOR, lambda s: s[0] | s[1] | s[2]),
])
def test_other_reduce_ops(op: dist.ReduceOp, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    parts = [torch.tensor([3, -1, 7, 2]) * (r + 1) for r in range(3)]

    def job(wire: QueueWire) -> torch.Tensor:
        t = parts[wire.rank].clone()
        collectives.all_reduce(wire, 1, t, op)
        return t

    for result in run_members(3, job):
        assert torch.equal(result, fn(torch.stack(parts)))


def test_broadcast_gather_scatter_all_gather_reduce() -> None:
    size = 4

    def job(wire: QueueWire) -> dict[str, Any]:
        r = wire.rank
        b = torch.tensor([r, r]) if r != 2 else torch.tensor([42, 43])
        collectives.broadcast(wire, 1, b, root=2)
        gathered = [torch.zeros(2, dtype=torch.int64) for _ in range(size)] if r == 1 else None
        collectives.gather(wire, 2, gathered, torch.tensor([r, 10 * r]), root=1)
        out = torch.zeros(3, dtype=torch.int64)
        inputs = [torch.full((3,), 100 + k) for k in range(size)] if r == 3 else None
        collectives.scatter(wire, 3, out, inputs, root=3)
        everyone = [torch.zeros(1) for _ in range(size)]
        collectives.all_gather(wire, 4, everyone, torch.tensor([float(r) / 2]))
        red = torch.tensor([1.5 * (r + 1)])
        collectives.reduce(wire, 5, red, root=0, op=dist.ReduceOp.SUM)
        collectives.barrier(wire, 6)
        return {"b": b, "g": gathered, "s": out, "ag": everyone, "red": red}

    results = run_members(size, job)
    for r, res in enumerate(results):
        assert res["b"].tolist() == [42, 43]
        assert res["s"].tolist() == [100 + r] * 3
        assert [t.item() for t in res["ag"]] == [0.0, 0.5, 1.0, 1.5]
    assert [t.tolist() for t in results[1]["g"]] == [[k, 10 * k] for k in range(size)]
    assert results[0]["red"].item() == 1.5 * (1 + 2 + 3 + 4)


def test_message_of_the_wrong_size_is_an_error() -> None:
    def job(wire: QueueWire) -> None:
        if wire.rank == 0:
            wire.send(1, 1, memoryview(bytes(12)))
        else:
            collectives.broadcast(wire, 1, torch.zeros(2, dtype=torch.int64), root=0)

    with pytest.raises(RuntimeError, match="12 bytes where 16 were expected"):
        run_members(2, job)
