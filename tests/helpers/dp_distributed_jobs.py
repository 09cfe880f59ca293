"""The real training job, recording what a hospital shares at each DP-SGD step with
``--dp-noise distributed``.

``recording_run`` runs ``fedtrain.run.hospital.run`` unchanged, except that inside this (test)
process two methods are wrapped to write down:

- ``SecureNoiseDPOptimizer.add_noise``, per step: the hospital's sum of clipped per-record
  gradients (``clipped``), what it hands to the secure sum (``shared``: that sum plus its noise
  share) and the revealed sum of all hospitals (``total``);
- ``LocalTrainer.train_epochs``: the SHA-256 of the model after every round (``digests``).

Everything goes to ``$CRYPTEN_FL_TEST_DP_DIR/<hospital>.pt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from crypten_fl.fedtrain.party import PartyContext

from helpers.dp_jobs import DP_DIR_ENV

JOB = "helpers.dp_distributed_jobs:recording_run"


def recording_run(ctx: PartyContext) -> dict[str, Any]:
    from crypten_fl.fedtrain.local_training.secure_opacus import SecureNoiseDPOptimizer
    from crypten_fl.fedtrain.local_training.trainer import LocalTrainer
    from crypten_fl.fedtrain.models.pretrained import state_digest
    from crypten_fl.fedtrain.run import hospital

    record: dict[str, list[Any]] = {"clipped": [], "shared": [], "total": [], "digests": []}
    add_noise, train_epochs = SecureNoiseDPOptimizer.add_noise, LocalTrainer.train_epochs

    def recording_add_noise(self: Any) -> None:
        record["clipped"].append(torch.cat([p.summed_grad.reshape(-1).double()
                                            for p in self.params]))
        inner = self.reduce

        def reduce(shared: torch.Tensor) -> torch.Tensor:
            record["shared"].append(shared.clone())
            total = inner(shared)
            record["total"].append(total.clone())
            return total

        self.reduce = reduce
        try:
            add_noise(self)
        finally:
            self.reduce = inner

    def recording_train_epochs(self: Any, *args: Any, **kwargs: Any) -> float:
        loss = train_epochs(self, *args, **kwargs)
        record["digests"].append(state_digest(self.state_dict()))
        return loss

    SecureNoiseDPOptimizer.add_noise = recording_add_noise  # type: ignore[method-assign]
    LocalTrainer.train_epochs = recording_train_epochs  # type: ignore[method-assign]
    try:
        result = hospital.run(ctx)
    finally:
        SecureNoiseDPOptimizer.add_noise = add_noise  # type: ignore[method-assign]
        LocalTrainer.train_epochs = train_epochs  # type: ignore[method-assign]
    out = Path(os.environ[DP_DIR_ENV]) / f"{ctx.spec['hospital']}.pt"
    torch.save(record, out)
    return result
