"""The real training job, recording what split and vertical parties add to what they share.

``recording_run`` runs ``fedtrain.run.hospital.run`` unchanged, except that inside this (test)
process ``add_noise_to_share`` (split's and vertical's) is wrapped to write down, per training
step, this party's share of each encrypted gradient before and after, decoded (``share_delta``:
what this party added to the secret) and as ring elements (``share_delta_ring``: with
``--dp-noise dealer`` only the parties' sum of these is the noise).

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
    from crypten_fl.fedtrain.strategies import split, vertical_private

    record: dict[str, list[torch.Tensor]] = {"share_delta": [], "share_delta_ring": []}
    modules = (split, vertical_private)
    originals = [module.add_noise_to_share for module in modules]

    def add_noise(grads: list[Any], std: float, rng: Any, **kwargs: Any) -> None:
        before = [g.share.clone() for g in grads]
        originals[0](grads, std, rng, **kwargs)
        for grad, old in zip(grads, before, strict=True):
            record["share_delta"].append(grad.encoder.decode(grad.share - old).reshape(-1))
            record["share_delta_ring"].append((grad.share - old).reshape(-1))

    for module in modules:
        module.add_noise_to_share = add_noise  # type: ignore[assignment]
    try:
        result = hospital.run(ctx)
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.add_noise_to_share = original  # type: ignore[assignment]
    out = Path(os.environ[DP_DIR_ENV]) / f"{ctx.spec['hospital']}.pt"
    torch.save({"share_delta": [t.double() for t in record["share_delta"]],
                "share_delta_ring": record["share_delta_ring"]}, out)
    return result
