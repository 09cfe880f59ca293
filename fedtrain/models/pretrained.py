"""A pretrained model on disk (`crypten-fl pretrain`) and the checks made before starting from it.

MODEL/ holds ``model.safetensors`` (the ICU Transformer's state dict, stock key names) and
``card.json``: the architecture, the data schema it was trained on (feature, label and static
names, units, definition hashes, time grid, training preprocessing), the data's provenance and
whether it is public, the training settings and its validation metrics. ``train --init-from
MODEL`` checks that the card fits the run (:func:`mismatches`) and that every hospital reads the
same weights (their SHA-256 is recorded in the run's config.json); the weights are public, so no
hospital sends anything to start from them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.schema import differences
from safetensors import SafetensorError
from safetensors.torch import load

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
#: the card's ``format`` field
CARD_FORMAT = "crypten-fl pretrained ICU Transformer"
CARD_VERSION = 1
#: TrainConfig fields that shape the weights -> the option that sets them
ARCHITECTURE_OPTIONS = {"d_model": "--d-model", "n_heads": "--heads", "n_layers": "--layers",
                        "dim_feedforward": "dim_feedforward", "pooling": "--pooling",
                        "head_hidden": "--head-hidden", "stay_summary": "--stay-summary"}
#: schema fields a model depends on (extraction criteria and record keys do not shape it)
SCHEMA_FIELDS = ("version", "features", "labels", "static", "n_bins", "bin_hours", "hours",
                 "training")


def architecture(config: Any) -> dict[str, Any]:
    """The weight-shaping architecture options of a TrainConfig."""
    return {field: getattr(config, field) for field in ARCHITECTURE_OPTIONS}


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's keys, dtypes, shapes and values (independent of file layout)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Pretrained:
    """A MODEL directory whose card has been read and checked."""

    path: Path
    card: dict[str, Any]

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def weights_sha256(self) -> str:
        return str(self.card["weights"]["sha256"])


def read_pretrained(path: Path, option: str = "--init-from") -> Pretrained:
    """Read MODEL/'s card; UserError naming ``option`` and the file for anything wrong."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{option} {path}: not a directory (a MODEL written by "
                        "`crypten-fl pretrain`)")
    card_path = path / CARD_FILE
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise UserError(f"{option} {path}: {CARD_FILE} not found (not a model written by "
                        "`crypten-fl pretrain`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{option} {card_path}: not a readable model card ({err})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise UserError(f"{option} {card_path}: not a card of `crypten-fl pretrain` "
                        f"(format is not {CARD_FORMAT!r})")
    if card.get("format_version") != CARD_VERSION:
        raise UserError(f"{option} {card_path}: card format version "
                        f"{card.get('format_version')}, this crypten-fl reads {CARD_VERSION}")
    for field in ("weights", "architecture", "schema", "data"):
        if not isinstance(card.get(field), dict):
            raise UserError(f"{option} {card_path}: missing or malformed field {field!r}")
    if not isinstance(card["weights"].get("sha256"), str):
        raise UserError(f"{option} {card_path}: missing the weights' sha256")
    if not (path / WEIGHTS_FILE).is_file():
        raise UserError(f"{option} {path}: {WEIGHTS_FILE} not found")
    return Pretrained(path, card)


def mismatches(pretrained: Pretrained, config: Any, schema: dict[str, Any]) -> list[str]:
    """How the run (``config`` and its hospitals' data ``schema``) differs from the pretrained
    model: weight-shaping options first, then features, labels, static columns and time bins."""
    found = []
    arch = config.with_model_of_its_time(pretrained.card["architecture"])
    for field, option in ARCHITECTURE_OPTIONS.items():
        mine, theirs = getattr(config, field), arch.get(field)
        if mine != theirs:
            found.append(f"{option} {mine}, the pretrained model has {theirs}")
    card_schema = {k: pretrained.card["schema"].get(k) for k in SCHEMA_FIELDS}
    run_schema = {k: schema.get(k) for k in SCHEMA_FIELDS}
    for key in ("features", "labels"):  # definitions are compared where both sides record them
        card_schema[key], run_schema[key] = _comparable(card_schema[key], run_schema[key])
    return found + differences(card_schema, run_schema, "the pretrained model")


def _comparable(ours: Any, theirs: Any) -> tuple[Any, Any]:
    """Feature or label records without the definition hash where one side lacks it (a cohort
    extracted before definitions were recorded): unknown is not a difference."""
    if not isinstance(ours, list) or not isinstance(theirs, list):
        return ours, theirs
    unknown = {i.get("name") for side in (ours, theirs) for i in side
             if isinstance(i, dict) and i.get("definition") is None}

    def strip(items: list[Any]) -> list[Any]:
        return [{k: v for k, v in i.items() if not (k == "definition" and i.get("name") in unknown)}
                if isinstance(i, dict) else i for i in items]

    return strip(ours), strip(theirs)


def check_public(pretrained: Pretrained, option: str = "--init-from") -> None:
    """Raise a UserError unless the card says the model was trained on public data."""
    if pretrained.card["data"].get("public") is not True:
        raise UserError(f"{option} {pretrained.path}: its card does not say it was trained on "
                        "public data; starting from a model of private data would spend privacy "
                        "that no accountant here measures")


def check_fits(pretrained: Pretrained, config: Any, schema: dict[str, Any],
               option: str = "--init-from") -> None:
    """Raise one UserError naming what differs between the run and the pretrained model."""
    check_public(pretrained, option)
    found = mismatches(pretrained, config, schema)
    if found:
        shown = "; ".join(found[:4]) + (" …" if len(found) > 4 else "")
        raise UserError(f"{option} {pretrained.path}: the pretrained model does not fit this "
                        f"run: {shown}")


def load_weights(path: Path, expected_sha256: str | None, option: str = "--init-from"
                 ) -> dict[str, torch.Tensor]:
    """The weights of MODEL/ at ``path``, checked against ``expected_sha256`` (the run's)."""
    pretrained = read_pretrained(path, option)
    data = pretrained.weights_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != pretrained.weights_sha256:
        raise UserError(f"{option} {pretrained.weights_path}: sha256 {actual[:12]}…, its card "
                        f"says {pretrained.weights_sha256[:12]}… (the file was changed)")
    if expected_sha256 is not None and actual != expected_sha256:
        raise UserError(f"{option} {pretrained.weights_path}: sha256 {actual[:12]}…, the run's "
                        f"config expects {expected_sha256[:12]}… (every hospital must start from "
                        "the same model)")
    try:
        return load(data)
    except (SafetensorError, ValueError) as err:
        raise UserError(f"{option} {pretrained.weights_path}: not a readable safetensors file "
                        f"({err})") from None


def provenance(pretrained: Pretrained) -> dict[str, Any]:
    """What privacy.json records about the pretraining a run started from."""
    card = pretrained.card
    return {
        "init_from": str(pretrained.path),
        "weights_sha256": pretrained.weights_sha256,
        "data": card["data"],
        "epochs": (card.get("training") or {}).get("epochs"),
        "seed": (card.get("training") or {}).get("seed"),
        "public_data": bool(card["data"].get("public")),
        "epsilon": 0.0,
        "accounting": ("the pretraining saw only public data, so it costs the hospitals no ε; "
                       "the DP fine-tuning on their data is accounted as any training "
                       "(hospitals.*.epsilon)"),
    }
