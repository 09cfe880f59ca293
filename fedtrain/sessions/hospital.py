"""A hospital's session: its own data, preprocessed with securely pooled statistics, and trainer.

Opened inside the hospital's process from its own directory only. (The ``centralized`` baseline
opens several directories in one process: that pooling is what makes it the plaintext baseline.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import ModelInputs, Normalizer, local_moments, static_width
from crypten_fl.fedtrain.local_training import dp_distributed, dp_recipe
from crypten_fl.fedtrain.local_training.dp_sgd import DPConfig
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer
from crypten_fl.fedtrain.local_training.trainer import TrainConfig as LocalConfig
from crypten_fl.fedtrain.models.pretrained import load_weights
from crypten_fl.fedtrain.models.transformer import ICUTransformer
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.aggregator import PlainAggregator, SecureAggregator
from crypten_fl.mimic_etl.hospital_data import HospitalSplit, load_split

#: sums of squares of raw values reach ~1e13 at full scale: 8 fractional bits keep them in range
MOMENT_PRECISION_BITS = 8


@dataclass
class Session:
    """What every party process works with, whatever the strategy."""

    rank: int
    hospitals: list[int]
    train: ModelInputs
    val: ModelInputs
    tests: dict[int, ModelInputs]
    label_names: list[str]  # empty at a vertical party without labels
    n_labels: int
    aggregator: SecureAggregator

    @property
    def n_train(self) -> int:
        return len(self.train)


@dataclass
class HospitalSession(Session):
    """A horizontal hospital: its own stays with all features, labels and a local trainer."""

    normalizer: Normalizer
    trainer: LocalTrainer
    pooled_moments: torch.Tensor | None = None  # kept in checkpoints for a rejoin
    #: DP-SGD with distributed noise: the federation's common schedule (else None)
    federation: dp_distributed.FederationPlan | None = None


def _concat(splits: list[HospitalSplit]) -> HospitalSplit:
    if len(splits) == 1:
        return splits[0]
    first = splits[0]
    return HospitalSplit(
        split=first.split,
        keys=np.concatenate([s.keys for s in splits]),
        subject_ids=None,
        values=np.concatenate([s.values for s in splits]),
        mask=np.concatenate([s.mask for s in splits]),
        static=pl.concat([s.static for s in splits], how="vertical_relaxed"),
        labels=np.concatenate([s.labels for s in splits]),
        feature_names=first.feature_names,
        label_names=first.label_names,
        manifest=first.manifest,
    )


def split_inputs(normalizer: Normalizer, split: HospitalSplit) -> ModelInputs:
    """A split's model inputs, normalised (a party without static columns passes none)."""
    static = split.static if split.static.width else None
    return normalizer.model_inputs(split.values, split.mask, static, split.labels)


def build_model(config: TrainConfig, n_features: int, n_static: int, n_labels: int,
                n_bins: int) -> ICUTransformer:
    """The ICU Transformer of ``config``, randomly initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    return ICUTransformer(
        n_features=n_features, n_static=n_static, n_labels=n_labels, n_bins=n_bins,
        d_model=config.d_model, n_heads=config.n_heads, n_layers=config.n_layers,
        dim_feedforward=config.dim_feedforward, dropout=config.model_dropout,
        pooling=config.pooling,
        head_hidden=(config.head_hidden,) if config.head_hidden else (),
        stay_summary=config.stay_summary,
    )


def initial_model(config: TrainConfig, n_features: int, n_static: int, n_labels: int,
                  n_bins: int, init_from: str | None = None) -> ICUTransformer:
    """The model every hospital starts from, the same everywhere without any exchange: the
    seeded random initialisation, or the public weights of ``init_from`` (checked against the
    SHA-256 the run's config recorded)."""
    model = build_model(config, n_features, n_static, n_labels, n_bins)
    if init_from is not None:
        weights = load_weights(Path(init_from), config.init_from_sha256)
        try:
            model.load_state_dict(weights)
        except RuntimeError as err:
            first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
            raise UserError(f"--init-from {init_from}: the weights do not fit the model of this "
                            f"run ({first})") from None
    return model


def open_session(rank: int, spec: dict[str, Any], config: TrainConfig) -> HospitalSession:
    """Load this hospital's splits, pool normalisation statistics securely, build its trainer."""
    dirs = [Path(d) for d in spec["hospital_dirs"]]
    hospitals = [int(spec["hospital"])] if len(dirs) == 1 else list(range(len(dirs)))
    train = _concat([load_split(d, "train") for d in dirs])
    val = _concat([load_split(d, "val") for d in dirs])
    tests = {h: load_split(d, "test") for h, d in zip(hospitals, dirs, strict=True)}

    aggregator_cls = SecureAggregator if config.secure else PlainAggregator
    aggregator = aggregator_cls(degree=config.mask_degree)
    has_static = bool(train.static.width)
    moments = local_moments(train.values, train.mask, train.static if has_static else None)
    if not spec.get("contributes_statistics", True):  # a held-out hospital at evaluation
        moments = torch.zeros_like(moments)
    pooled = spec.get("pooled_moments")  # a hospital rejoining a running group kept them
    if pooled is None:
        pooled = aggregator.sum(moments, MOMENT_PRECISION_BITS, what=tags.MOMENTS)
    normalizer = Normalizer.from_moments(pooled)

    model = initial_model(config, len(train.feature_names), static_width(has_static),
                          len(train.label_names), train.values.shape[1],
                          spec.get("init_from") or config.init_from)
    train_inputs = split_inputs(normalizer, train)
    federation = _federation_plan(config, aggregator, len(train_inputs))
    local, dp = _local_settings(config, len(train_inputs), hospitals[0], federation)
    trainer = LocalTrainer(model, train_inputs, local, dp, **({} if federation is None else {
        "reduce": lambda v: aggregator.sum(v, what=tags.NOISY_GRADIENT_SUM),
        "n_records": federation.records}))
    return HospitalSession(
        rank=rank, hospitals=hospitals, train=train_inputs, val=split_inputs(normalizer, val),
        tests={h: split_inputs(normalizer, s) for h, s in tests.items()},
        label_names=train.label_names, n_labels=len(train.label_names),
        normalizer=normalizer, trainer=trainer, pooled_moments=pooled,
        aggregator=aggregator, federation=federation,
    )


def _federation_plan(config: TrainConfig, aggregator: SecureAggregator, n_train: int
                     ) -> dp_distributed.FederationPlan | None:
    """DP-SGD with distributed noise: the federation's schedule, from the total number of
    training records (one secure sum); None otherwise."""
    if not config.distributed_dp:
        return None
    total = aggregator.sum(torch.tensor([float(n_train)], dtype=torch.float64),
                           what=tags.TRAINING_RECORDS)
    return dp_distributed.plan(round(float(total[0])), aggregator.world_size,
                               config.dp_batch_size)


def _local_settings(config: TrainConfig, n_train: int, hospital: int,
                    federation: dp_distributed.FederationPlan | None = None
                    ) -> tuple[LocalConfig, DPConfig | None]:
    """The trainer's settings: the run's, or with DP-SGD the DP recipe's for this hospital's
    training-set size (fedtrain/local_training/dp_recipe.py) where no option overrides it; with
    distributed noise the batch is the federation's (``federation``)."""
    seed = config.seed * 1000 + hospital
    if config.dp_epsilon is None:
        return LocalConfig(lr=config.lr, batch_size=config.batch_size, seed=seed,
                           num_threads=config.threads_per_party), None
    recipe = dp_recipe.choose(n_train, epochs=config.rounds * config.local_epochs,
                              steps_per_epoch=None if federation is None
                              else federation.steps_per_epoch,
                              pretrained=config.init_from is not None,
                              batch_size=config.dp_batch_size, lr=config.dp_lr,
                              clipping=config.dp_clipping, max_grad_norm=config.max_grad_norm,
                              trainable=config.dp_trainable, dropout=config.dropout)
    shared = {} if federation is None else {
        "steps_per_epoch": federation.steps_per_epoch, "noise_share": federation.noise_share,
        "global_batch": float(federation.batch)}
    dp = DPConfig(target_epsilon=config.dp_epsilon,
                  total_epochs=config.rounds * config.local_epochs, delta=config.dp_delta,
                  max_grad_norm=recipe.max_grad_norm, clipping=recipe.clipping,
                  recipe_chose=recipe.chosen, **shared)
    batch = recipe.batch_size if federation is None else federation.batch
    return LocalConfig(lr=recipe.lr, batch_size=batch, seed=seed,
                       num_threads=config.threads_per_party,
                       trainable=dp_recipe.TRAINABLE_PREFIXES[recipe.trainable]), dp
