"""``--init-from``: check a pretrained model against the run before any process starts.

The coordinator (and each node, for its own hospital) reads the model's card, compares its
architecture and data schema with the run's (vertical parties: their features with the public
feature map's, fedtrain/models/public_features.py), and records the weights' SHA-256 in config.json;
each hospital process then loads the weights and checks that hash (fedtrain/sessions/hospital.py),
so every hospital starts from the same public model without exchanging anything.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import preprocessing_spec
from crypten_fl.fedtrain.models.pretrained import Pretrained, read_pretrained
from crypten_fl.mimic_etl.schema import fingerprint


def run_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A hospital's schema description with this process's training preprocessing, as the
    hospitals compare it (fedtrain/sessions/schema_check.py) and as the card records it."""
    return {**schema, "training": fingerprint(preprocessing_spec())[:16]}


def resolve_init_from(config: TrainConfig, schemas: list[dict[str, Any]],
                      path: Path | None = None, option: str = "--init-from"
                      ) -> tuple[TrainConfig, Pretrained | None]:
    """The config with ``init_from`` absolute and ``init_from_sha256`` filled in, after checking
    that the model fits ``config`` and every hospital's data (``schemas``: all the coordinator
    knows, a node's own; the strategy decides what fits). ``path``: where this machine's
    copy of the model is (default: ``config.init_from``); its weights must have the hash the
    config already records, if any."""
    if config.init_from is None:
        if path is not None:
            raise UserError(f"{option} {path}: the run's config starts from a random "
                            "initialisation (no init_from); every hospital must start alike")
        return config, None
    pretrained = read_pretrained(Path(path if path is not None else config.init_from), option)
    strategy = strategies.get(config.strategy)
    for one in schemas:
        strategy.check_pretrained(pretrained, config, run_schema(one), option)
    recorded = config.init_from_sha256
    if recorded is not None and recorded != pretrained.weights_sha256:
        raise UserError(f"{option} {pretrained.path}: its weights have sha256 "
                        f"{pretrained.weights_sha256[:12]}…, the run's config expects "
                        f"{recorded[:12]}… (every hospital must start from the same model)")
    resolved = config.init_from if path is not None else str(pretrained.path.resolve())
    return dataclasses.replace(config, init_from=resolved,
                               init_from_sha256=pretrained.weights_sha256), pretrained
