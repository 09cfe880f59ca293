"""One fixture federation, its initial model and each hospital's model after one local round.

Shared by the update-validation and central-DP tests: with the same seed every strategy trains
each hospital identically before its first exchange, so the ``local`` baseline's models after one
round are exactly the models the hospitals of a one-round federated run share. Built once per
test session (``federation_with_local_models``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import static_width
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.secure.tensors import flatten
from crypten_fl.fedtrain.sessions.hospital import build_model
from crypten_fl.mimic_etl.hospital_data import load_split
from safetensors.torch import load_file

from helpers.federation import TINY_MODEL, small_federation

#: options of every one-round run these tests compare (same seed ⇒ same local training)
ONE_ROUND: dict[str, Any] = {"rounds": 1, "seed": 3, **TINY_MODEL}
HOSPITALS = 3

_built: dict[str, LocalModels] = {}


@dataclass
class LocalModels:
    """The federation, the common initial model and each hospital's model after one round."""

    fed: Path
    initial: dict[str, torch.Tensor]
    trained: list[dict[str, torch.Tensor]]
    n_train: list[int]

    def update(self, k: int, keys: list[str] | None = None) -> torch.Tensor:
        """Hospital k's update (trained − initial) over ``keys`` (default: all), flattened."""
        keys = keys or sorted(self.initial)
        return (flatten({key: self.trained[k][key] for key in keys})
                - flatten({key: self.initial[key] for key in keys}))


def _initial_model(fed: Path, config: TrainConfig) -> dict[str, torch.Tensor]:
    """The model every hospital starts from (as fedtrain/sessions/hospital.py builds it)."""
    split = load_split(fed / "hospital_0", "train")
    model = build_model(config, len(split.feature_names), static_width(bool(split.static.width)),
                        len(split.label_names), split.values.shape[1])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def federation_with_local_models(tmp_path_factory: Any) -> LocalModels:
    """Build (once per session) the federation and run the ``local`` baseline for one round."""
    if "models" not in _built:
        root = tmp_path_factory.mktemp("update-sharing")
        fed = small_federation(root, n_patients=150, seed=2, hospitals=HOSPITALS)
        config = TrainConfig(fed=str(fed), strategy="local", **ONE_ROUND)
        run = train(config, root / "local").run_dir
        trained = [load_file(str(run / f"model_hospital_{k}.safetensors"))
                   for k in range(HOSPITALS)]
        n_train = [json.loads((fed / f"hospital_{k}" / "manifest.json").read_text())
                   ["counts"]["train"] for k in range(HOSPITALS)]
        _built["models"] = LocalModels(fed, _initial_model(fed, config), trained, n_train)
    return _built["models"]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)
