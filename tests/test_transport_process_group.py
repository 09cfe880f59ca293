"""The cfltls backend in real party processes: collectives, sub-groups, point to point, timeouts."""

from __future__ import annotations

import torch
from helpers.parties import run_job
from safetensors.torch import load_file


def test_torch_distributed_over_the_federation_links(tmp_path) -> None:
    results = run_job("transport_collectives", [{}] * 3, tmp_path / "w", timeout_s=30)
    assert [r["backend"] for r in results] == ["cfltls"] * 3
    assert all(r["ints"] == [6] * 5 for r in results)
    assert [r["broadcast"] for r in results] == [20, 20, 20]
    assert results[0]["pair_sum"] == results[2]["pair_sum"] == 2.0 and "pair_sum" not in results[1]
    assert [r["ring_p2p"] for r in results] == [[2.0] * 3, [0.0] * 3, [1.0] * 3]
    assert all(r["silent"] == f"timed out waiting for hospital_{(k - 1) % 3}"
               for k, r in enumerate(results))
    # the ring all-reduce of floats: the same bits at every member, and the right sum
    sums = [load_file(str(tmp_path / "w" / f"party_{k}" / "floats.safetensors"))["floats"]
            for k in range(3)]
    assert torch.equal(sums[0], sums[1]) and torch.equal(sums[1], sums[2])
    expected = sum(torch.randn(300_000, generator=torch.Generator().manual_seed(k),
                               dtype=torch.float64) for k in range(3))
    assert torch.allclose(sums[0], expected, rtol=0, atol=1e-12)
    assert all(sent > 300_000 * 8 and received > 300_000 * 8
               for sent, received in (r["sent_received"] for r in results))
