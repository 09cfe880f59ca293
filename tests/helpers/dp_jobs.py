"""The real training job, recording what split and vertical parties add to what they share.

``recording_run`` runs ``fedtrain.run.hospital.run`` unchanged, except that inside this (test)
process three places are wrapped to write down, per training step:

- vertical, ``share_blocks``: the block this party secret-shares (``shared``) and the noise this
  party drew for it just before (``noise``), so that ``shared - noise`` is what it would have
  shared without noise;
- vertical, the label party's noise on the output gradients (``label_noise``);
- split, ``add_noise_to_share``: this party's share of the encrypted server gradient before and
  after, decoded (``share_delta``: what was really added to the secret).

Everything goes to ``$CRYPTEN_FL_TEST_DP_DIR/<hospital>.pt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from crypten_fl.fedtrain.party import PartyContext

DP_DIR_ENV = "CRYPTEN_FL_TEST_DP_DIR"
JOB = "helpers.dp_jobs:recording_run"


def recording_run(ctx: PartyContext) -> dict[str, Any]:
    from crypten_fl.fedtrain.run import hospital
    from crypten_fl.fedtrain.strategies import split, vertical

    record: dict[str, list[torch.Tensor]] = {"shared": [], "noise": [], "label_noise": [],
                                             "share_delta": []}
    pending: list[torch.Tensor] = []
    originals = (vertical.share_blocks, vertical.Vertical._noise, split.add_noise_to_share)

    def noise(self: Any, like: torch.Tensor, bound: float) -> torch.Tensor:
        drawn = originals[1](self, like, bound)
        if bound == self.embedding_clip:
            pending.append(drawn.clone())
        else:
            record["label_noise"].append(drawn.clone())
        return drawn

    def share_blocks(local: torch.Tensor, shapes: Any, rank: int, dim: int) -> Any:
        if pending:  # a training step: the block follows its noise draw
            record["noise"].append(pending.pop())
            record["shared"].append(local.clone())
        return originals[0](local, shapes, rank, dim)

    def add_noise(grads: list[Any], std: float, rng: Any) -> None:
        before = [g.share.clone() for g in grads]
        originals[2](grads, std, rng)
        for grad, old in zip(grads, before, strict=True):
            record["share_delta"].append(grad.encoder.decode(grad.share - old).reshape(-1))

    vertical.share_blocks, vertical.Vertical._noise = share_blocks, noise  # type: ignore[assignment]
    split.add_noise_to_share = add_noise  # type: ignore[assignment]
    try:
        result = hospital.run(ctx)
    finally:
        vertical.share_blocks, vertical.Vertical._noise, split.add_noise_to_share = originals
    out = Path(os.environ[DP_DIR_ENV]) / f"{ctx.spec['hospital']}.pt"
    torch.save({k: [t.double() for t in v] for k, v in record.items()}, out)
    return result
