"""The job a hospital runs in the eavesdropping test: the real training job, with ground truth.

``python -m fedtrain.party --job helpers.attack_jobs:run ...`` runs ``fedtrain.run.hospital.run``
unchanged, except that inside this (test) process the split strategy's server step — the place
where the hospital secret-shares its cut-layer activations — is wrapped to also save them, and
CrypTen's seeds of this party are written down once it has joined. The attacker never reads
these files; the test compares its reconstruction with them.

Written to the party's work dir:
- ``cut_<i>.safetensors``: the i-th server step of the run (step 0 of round 1 is ``cut_0``):
  ``h``, the activations exactly as handed to ``share_blocks``, and ``server.<name>``, this
  party's shares of the encrypted server weights at the start of the step (the sum of all
  parties' shares, mod 2^64, is their fixed-point encoding);
- ``seeds.json``: this party's CrypTen generator seeds (``torch.Generator.initial_seed()``:
  ``prev``, ``next``, ``global`` and the TTP dealer's ``ttp``).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import torch
from crypten_fl.fedtrain.party import PartyContext
from safetensors.torch import save_file

SAVED_STEPS = 2


def party_seeds() -> dict[str, int]:
    """This party's generator seeds as torch holds them (unsigned 64-bit)."""
    from crypten_fl.fedtrain.compat import crypten

    cpu = torch.device("cpu")
    seeds = {name: int(crypten.generators[name][cpu].initial_seed())
             for name in ("prev", "next", "global")}
    client = crypten.mpc.provider.ttp_provider.TTPClient.get()
    seeds["ttp"] = int(client.generator.initial_seed())
    return seeds


def run(ctx: PartyContext) -> dict[str, Any]:
    """``fedtrain.run.hospital.run`` with the cut-layer activations saved to the work dir."""
    from crypten_fl.fedtrain.run import hospital
    from crypten_fl.fedtrain.strategies.split import Split

    workdir = Path(ctx.workdir)
    (workdir / "seeds.json").write_text(json.dumps(party_seeds()))
    original = Split._server_step
    steps = itertools.count()

    def recording(self: Split, h: torch.Tensor, y: torch.Tensor, step: int) -> tuple[float, int]:
        index = next(steps)
        if index < SAVED_STEPS:
            shares = {f"server.{k}": v.contiguous() for k, v in self.server.shares().items()}
            save_file({"h": h.detach().clone().contiguous(), **shares},
                      str(workdir / f"cut_{index}.safetensors"))
        return original(self, h, y, step)

    Split._server_step = recording  # type: ignore[method-assign]
    try:
        return hospital.run(ctx)
    finally:
        Split._server_step = original  # type: ignore[method-assign]
