"""A vertical party's session: its own feature group of the stays all parties share.

Rows are aligned across parties by private set intersection on the pseudonymous record keys;
each party normalises its own columns with its own statistics (it holds the whole column, so
nothing needs pooling); only the label party holds labels.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import ModelInputs, Normalizer, local_moments, static_width
from crypten_fl.fedtrain.models.dp_compat import canonical_state_dict, load_canonical_state_dict
from crypten_fl.fedtrain.models.public_features import PublicProjection, load_projection
from crypten_fl.fedtrain.models.transformer import ICUEncoder
from crypten_fl.fedtrain.secure.aggregator import SecureAggregator
from crypten_fl.fedtrain.secure.psi import CryptenChannel, align
from crypten_fl.fedtrain.sessions.hospital import Session
from crypten_fl.fedtrain.sessions.lockstep import all_sizes
from crypten_fl.mimic_etl.hospital_data import HospitalSplit, load_split
from torch import nn

SPLITS = ("train", "val", "test")


class BottomTrainer:
    """The bottom model of one party and its optimiser (trained by gradients from the top).

    Its state dict speaks the stock model's key names also when the model has been made
    trainable with per-example gradients (vertical's DP, fedtrain/strategies/vertical.py)."""

    def __init__(self, model: nn.Module, lr: float) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return canonical_state_dict(self.model)

    def checkpoint(self) -> dict[str, Any]:
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        load_canonical_state_dict(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def privacy_report(self) -> None:
        return None


@dataclass
class VerticalSession(Session):
    """A vertical party: its feature group of the aligned stays (rows in the agreed order)."""

    trainer: BottomTrainer
    psi_bytes: int
    #: with --dp-epsilon and --init-from: this party's feature map fitted on public data
    public_projection: PublicProjection | None = None

    @property
    def is_label_party(self) -> bool:
        return self.train.labels is not None


def holds_static(split: HospitalSplit) -> bool:
    """Whether this party holds the stays' static columns (the partition gives them to one)."""
    return bool(set(split.static.columns) & {"age", "sex"})


def public_projection(session: Any) -> PublicProjection | None:
    """A party's public feature map (--dp-epsilon with --init-from), if it has one (a minimal
    session of the tests may lack the field)."""
    return getattr(session, "public_projection", None)


def _aligned(split: HospitalSplit, rank: int, world: int, channel: CryptenChannel,
             label_party: int) -> tuple[HospitalSplit, int]:
    result = align(list(split.keys), rank, world, channel, label_party=label_party)
    rows = np.asarray(result.rows)
    aligned = dataclasses.replace(
        split, keys=split.keys[rows], values=split.values[rows], mask=split.mask[rows],
        static=split.static[rows] if split.static.width else split.static,
        labels=None if split.labels is None else split.labels[rows],
    )
    return aligned, int(result.bytes_sent)


def open_vertical_session(rank: int, spec: dict[str, Any], config: TrainConfig
                          ) -> VerticalSession:
    """Load this party's splits, align rows by PSI, normalise locally, build the bottom model."""
    directory = Path(spec["hospital_dirs"][0])
    world = int(spec["n_hospitals"])
    label_party = int(spec.get("label_party", 0))
    channel = CryptenChannel()
    splits, psi_bytes = {}, 0
    for name in SPLITS:
        splits[name], sent = _aligned(load_split(directory, name), rank, world, channel,
                                      label_party)
        psi_bytes += sent
    train = splits["train"]
    if not train.feature_names:
        raise UserError(f"{directory}: a vertical party needs at least one time-series feature")
    has_static = holds_static(train)
    static = train.static if has_static else None
    normalizer = Normalizer.from_moments(local_moments(train.values, train.mask, static))

    def inputs(split: HospitalSplit) -> ModelInputs:
        return normalizer.model_inputs(split.values, split.mask,
                                       split.static if has_static else None, split.labels)

    torch.manual_seed(config.seed * 1000 + rank)
    bottom = ICUEncoder(
        n_features=len(train.feature_names), n_static=static_width(has_static),
        n_bins=train.values.shape[1], d_model=config.d_model, n_heads=config.n_heads,
        n_layers=config.n_layers, dim_feedforward=config.dim_feedforward,
        dropout=config.model_dropout, pooling=config.pooling,
    )
    init_from = spec.get("init_from") or config.init_from
    projection = None
    if config.dp_epsilon is not None and init_from is not None:
        projection = load_projection(Path(init_from), config.init_from_sha256,
                                     list(train.feature_names), has_static, config.seed)
    gathered = all_sizes(len(train.label_names))
    return VerticalSession(
        rank=rank, hospitals=[int(spec["hospital"])], train=inputs(train),
        val=inputs(splits["val"]), tests={int(spec["hospital"]): inputs(splits["test"])},
        label_names=list(train.label_names), n_labels=max(gathered),
        trainer=BottomTrainer(copy.deepcopy(bottom), config.lr),
        aggregator=SecureAggregator(degree=config.mask_degree), psi_bytes=psi_bytes,
        public_projection=projection,
    )

