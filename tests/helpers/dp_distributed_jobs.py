"""The real training job, recording what a hospital shares at each DP-SGD step with
``--dp-noise distributed``.

``recording_run`` runs ``fedtrain.run.hospital.run`` unchanged, except that inside this (test)
process two methods are wrapped to write down:

- ``SecureNoiseDPOptimizer.add_noise``, per step: the hospital's sum of clipped per-record
  gradients of the parameters summed across hospitals (``clipped``), what it hands to the secure
  sum (``shared``: that sum plus its noise share) and the revealed sum of all hospitals
  (``total``); for the parameters kept local (FedPer's personal layers) their clipped sum
  (``local_clipped``) and their noisy sum before the rescaling to the hospital's own batch
  (``local_noisy``), with that rescaling (``local_scale``);
- ``LocalTrainer.train_epochs``: after every round, the SHA-256 of the parameters summed across
  hospitals (``digests``) and of the whole model (``model_digests``).

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

    record: dict[str, list[Any]] = {"clipped": [], "shared": [], "total": [], "digests": [],
                                    "model_digests": [], "local_clipped": [], "local_noisy": [],
                                    "local_scale": []}
    add_noise, train_epochs = SecureNoiseDPOptimizer.add_noise, LocalTrainer.train_epochs

    def flat(params: list[Any], attribute: str) -> torch.Tensor:
        return torch.cat([getattr(p, attribute).reshape(-1).double() for p in params])

    def recording_add_noise(self: Any) -> None:
        local = [p for p in self.params if id(p) in self.local_ids]
        record["clipped"].append(flat([p for p in self.params if id(p) not in self.local_ids],
                                      "summed_grad"))
        if local:
            record["local_clipped"].append(flat(local, "summed_grad"))
            record["local_scale"].append(self.local_scale)
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
        if local:
            record["local_noisy"].append(flat(local, "grad") / self.local_scale)

    def recording_train_epochs(self: Any, *args: Any, **kwargs: Any) -> float:
        loss = train_epochs(self, *args, **kwargs)
        local = self.optimizer.local_ids
        record["digests"].append(state_digest({
            name: p.detach() for name, p in self.model.named_parameters()
            if id(p) not in local}))
        record["model_digests"].append(state_digest(self.state_dict()))
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
