"""The encrypted head's block protocol in real party processes, with the TTP dealer."""

from __future__ import annotations

import torch
from helpers.parties import run_job
from safetensors.torch import load_file


def test_each_block_of_the_result_reaches_only_its_owner(tmp_path) -> None:
    sizes = [2, 3, 1]
    run_job("blocks_to_owners", [{"sizes": sizes}] * 3, tmp_path, ttp=True, timeout_s=60)
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    for rank, size in enumerate(sizes):
        out = load_file(str(tmp_path / f"party_{rank}" / "out.safetensors"))
        expected = layer(torch.full((size, 3), float(rank + 1))).detach()
        assert torch.allclose(out["mine"], expected, atol=1e-3)
        for k in range(3):
            if k == rank:
                continue
            truth = layer(torch.full((sizes[k], 3), float(k + 1))).detach().double()
            # a party's own share of another's block is a random ring element, not the value
            assert (out[f"share_{k}"] - truth).abs().min() > 1.0
