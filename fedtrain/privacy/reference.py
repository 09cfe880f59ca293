"""Reference ("shadow") models a hospital trains on its own non-candidate stays, for LiRA.

Each reference model has the target's architecture, starts where the target's training started
(re-initialised from its own seed, or from the run's public pretrained weights when it was
trained with ``--init-from``), and is trained like one hospital's local model (Adam, the run's
learning rate and batch size, its dropout, ``epochs`` passes) on a random half of the reference
pool. No candidate stay is in any reference model's training data, so the models give the "OUT"
behaviour of every candidate (offline LiRA). They are trained without DP-SGD whatever the
target used: the attack's calibration only needs models of the same family, and a weaker
reference only weakens the attack (the bound it gives stays valid).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import torch
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer, TrainConfig
from crypten_fl.fedtrain.models.dp_compat import load_canonical_state_dict
from crypten_fl.fedtrain.privacy.membership_inference import logits
from torch import nn


def take(inputs: ModelInputs, index: np.ndarray) -> ModelInputs:
    """The stays ``index`` of ``inputs``."""
    idx = torch.from_numpy(np.asarray(index, dtype=np.int64))
    labels = None if inputs.labels is None else inputs.labels[idx]
    return ModelInputs(inputs.x[idx], inputs.static[idx], labels)


def concat(parts: list[ModelInputs]) -> ModelInputs:
    """Stays of several inputs, in order (all with labels)."""
    labels = [p.labels for p in parts]
    if any(t is None for t in labels):
        raise ValueError("every part needs labels")
    return ModelInputs(torch.cat([p.x for p in parts]), torch.cat([p.static for p in parts]),
                       torch.cat(labels))  # type: ignore[arg-type]


def fresh_model(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model``'s architecture with parameters re-initialised from ``seed``."""
    copied = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in copied.modules():
            if isinstance(module, nn.MultiheadAttention):
                module._reset_parameters()
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return copied


def starting_model(model: nn.Module, seed: int,
                   initial: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """A reference model's start: ``model``'s architecture with the ``initial`` parameters
    (canonical names; a run from public pretrained weights), else re-initialised from ``seed``."""
    if initial is None:
        return fresh_model(model, seed)
    copied = copy.deepcopy(model)
    load_canonical_state_dict(copied, initial)
    return copied


def reference_logits(model: nn.Module, pool: ModelInputs, subsets: list[np.ndarray],
                     candidates: ModelInputs, *, epochs: int, lr: float, batch_size: int,
                     seed: int, initial: Mapping[str, torch.Tensor] | None = None,
                     on_model: Callable[[int], None] = lambda k: None) -> np.ndarray:
    """Logits ``(K, N, L)`` on ``candidates`` of K reference models, model k started as
    :func:`starting_model` and trained for ``epochs`` on ``pool`` stays ``subsets[k]``;
    ``on_model(k)`` after each."""
    out = []
    for k, subset in enumerate(subsets):
        trainer = LocalTrainer(starting_model(model, seed * 1000 + k, initial),
                               take(pool, subset),
                               TrainConfig(lr=lr, batch_size=batch_size, seed=seed * 1000 + k))
        trainer.train_epochs(epochs)
        out.append(logits(trainer.model, candidates))
        on_model(k + 1)
    return np.stack(out)
