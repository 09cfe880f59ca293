"""Training of the ICU model inside ONE hospital, optionally with DP-SGD.

The trainer owns its copy of the model, an Adam optimizer (state kept across rounds), the data
loader, and — with DP — one Opacus privacy engine for the whole run. Federated strategies drive it:
``train_epochs`` locally, read ``shared_state``, aggregate securely, ``load_shared_state``.

Reproducibility: the seed fixes the shuffling (a seeded ``torch.Generator`` for the loader) and
dropout (a private copy of torch's global RNG state, swapped in only while this trainer trains, so
trainers in one process do not disturb each other). Both states are in
:meth:`LocalTrainer.checkpoint`, so a restored trainer without DP continues bit-for-bit (with
``num_threads=1``; multi-threaded kernels may reorder float sums). With DP, the noise and the
Poisson sampling come from a CSPRNG seeded from the OS (fedtrain/secure_noise.py) and are
deliberately not reproducible: not from the seed, nor across a restore (the stream is not
checkpointed; a restored trainer draws fresh OS entropy).

State dicts always use the stock model's key names (no Opacus ``_module.`` prefix, no DP
attention ``qlinear``/``klinear``/``vlinear`` split), so hospitals with and without DP exchange
the same tensors.

>>> trainer = LocalTrainer(model, train_inputs, TrainConfig(seed=1))  # doctest: +SKIP
>>> loss = trainer.train_epochs(1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from crypten_fl.fedtrain.local_training.dp_sgd import (
    DPConfig,
    PrivateTraining,
    accountant_state,
    load_accountant_state,
    make_private,
    privacy_report,
)
from crypten_fl.fedtrain.local_training.proximal import ProximalTerm
from crypten_fl.fedtrain.models.dp_compat import (
    canonical_state_dict,
    load_canonical_state_dict,
    make_private_compatible,
    unwrap,
)
from crypten_fl.fedtrain.models.transformer import ICUTransformer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@dataclass(frozen=True)
class TrainConfig:
    """Local optimisation settings.

    Args:
        lr: Adam learning rate.
        batch_size: examples per step (with DP: the expected Poisson batch size).
        seed: seeds shuffling and dropout of this trainer (never DP noise or DP sampling).
        num_threads: if set, ``torch.set_num_threads`` (process-wide; 1 for bit-reproducibility).
        trainable: name prefixes of the parameters trained (None: all); the others stay frozen
            at their initial values (under DP fewer trainable parameters mean less noise).
    """

    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0
    num_threads: int | None = None
    trainable: tuple[str, ...] | None = None


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LocalTrainer:
    """Trains one hospital's model with BCE-with-logits over the labels."""

    def __init__(
        self,
        model: ICUTransformer,
        train: ModelInputs,
        config: TrainConfig | None = None,
        dp: DPConfig | None = None,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        n_records: int | None = None,
    ) -> None:
        """``reduce`` and ``n_records``: DP-SGD with distributed noise (see
        :func:`~crypten_fl.fedtrain.local_training.dp_sgd.make_private`)."""
        if train.labels is None:
            raise ValueError("the training split needs labels")
        self.config = config or TrainConfig()
        self.dp_config = dp
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        seed = self.config.seed
        self._loader_generator = _seeded(seed)
        self._torch_rng = _seeded(seed + 2).get_state()
        self.epochs_done = 0
        self.loss_fn = nn.BCEWithLogitsLoss()

        dataset = TensorDataset(train.x, train.static, train.labels)
        loader = DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=True,
            generator=self._loader_generator,
        )
        module = make_private_compatible(model) if dp else copy.deepcopy(model)
        if self.config.trainable is not None:
            for name, parameter in module.named_parameters():
                parameter.requires_grad_(name.startswith(self.config.trainable))
        optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad],
                                     lr=self.config.lr)
        self._private: PrivateTraining | None = None
        if dp is not None:
            self._private = make_private(module, optimizer, loader, dp, reduce=reduce,
                                         n_records=n_records)
            module, optimizer, loader = (
                self._private.module,
                self._private.optimizer,
                self._private.loader,
            )
        self.module: nn.Module = module  # GradSampleModule with DP
        self.optimizer: torch.optim.Optimizer = optimizer
        self.loader = loader

    @property
    def model(self) -> nn.Module:
        """The plain model being trained (unwrapped from Opacus; DP attention if DP is on)."""
        return unwrap(self.module)

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Use this trainer's dropout RNG stream, leaving the process-global stream untouched.

        Also silences torch's benign warning that Opacus' full backward hook fires on a layer
        whose input needs no gradient (the input projection).
        """
        outer = torch.get_rng_state()
        torch.set_rng_state(self._torch_rng)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                yield
        finally:
            self._torch_rng = torch.get_rng_state()
            torch.set_rng_state(outer)

    def train_epochs(
        self,
        n_epochs: int,
        progress: ProgressFn = no_progress,
        after_step: Callable[[nn.Module], None] | None = None,
        proximal: ProximalTerm | None = None,
    ) -> float:
        """Train ``n_epochs`` passes; return the mean per-example loss over them (the data loss,
        without a proximal term).

        ``after_step(model)`` runs after every optimizer step on the plain model (e.g. FedMTL's
        proximal pull of the head); it must not touch data, so it costs no privacy under DP.
        ``proximal`` adds FedProx's term to the objective (:meth:`step`).
        """
        if self.dp_config is not None and self.epochs_done + n_epochs > self.dp_config.total_epochs:
            raise ValueError(
                f"DP budget was calibrated for {self.dp_config.total_epochs} epochs; "
                f"{self.epochs_done} done, {n_epochs} more requested"
            )
        self.module.train()
        total_loss, total_examples = 0.0, 0
        steps_per_epoch = len(self.loader)
        with self._own_rng():
            for epoch in range(n_epochs):
                for step, (x, static, labels) in enumerate(self.loader, start=1):
                    self.optimizer.zero_grad(set_to_none=True)
                    loss = self.loss_fn(self.module(x, static), labels)
                    loss.backward()
                    self.step(proximal)
                    if after_step is not None:
                        with torch.no_grad():
                            after_step(self.model)
                    if len(labels):  # Poisson sampling can draw an empty batch
                        total_loss += float(loss.detach()) * len(labels)
                        total_examples += len(labels)
                    progress(
                        "local training", epoch * steps_per_epoch + step, n_epochs * steps_per_epoch
                    )
                self.epochs_done += 1
        return total_loss / max(total_examples, 1)

    def step(self, proximal: ProximalTerm | None = None) -> None:
        """One optimizer step on the gradients of the last backward pass. With a proximal term
        its gradient is added just before the step: under DP-SGD after Opacus has clipped and
        noised the per-example gradients (the term touches no data)."""
        if proximal is None:
            self.optimizer.step()
        elif self._private is None:
            proximal.add_gradient()
            self.optimizer.step()
        elif self._private.optimizer.pre_step():  # clip, noise, account; False: skipped step
            proximal.add_gradient()
            self._private.optimizer.original_optimizer.step()

    @torch.no_grad()
    def predict(self, inputs: ModelInputs, batch_size: int = 1024) -> np.ndarray:
        """Probabilities ``(N, n_labels)`` (sigmoid of the logits) in eval mode."""
        model = self.model
        was_training = model.training
        model.eval()
        try:
            chunks = [
                torch.sigmoid(
                    model(inputs.x[i : i + batch_size], inputs.static[i : i + batch_size])
                )
                for i in range(0, len(inputs), batch_size)
            ]
        finally:
            model.train(was_training)
        if not chunks:
            return np.zeros((0, model.head[-1].out_features), dtype=np.float32)
        return torch.cat(chunks).numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """All model parameters under stock key names (detached copies)."""
        return canonical_state_dict(self.module)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a complete state dict (stock key names); missing keys are an error."""
        missing = sorted(set(self.state_dict()) - set(state))
        if missing:
            raise KeyError(f"state dict lacks keys: {missing[:5]}")
        load_canonical_state_dict(self.module, state)

    def shared_state(self, personal_layers: int = 0) -> dict[str, torch.Tensor]:
        """Parameters on the shared side of the cut (``personal_layers`` head layers stay local)."""
        model = cast(ICUTransformer, self.model)  # make_private_compatible keeps the class
        return {
            k: v for k, v in self.state_dict().items() if model.is_shared_key(k, personal_layers)
        }

    def keep_local(self, is_local: Callable[[str], bool]) -> None:
        """DP-SGD with distributed noise: the parameters whose name satisfies ``is_local`` (a
        personal head) are left out of every step's sum across hospitals; they get this
        hospital's full noise and are scaled by its own expected batch (the others by the
        federation's). A no-op when no parameter is local."""
        dp = self.dp_config
        if self._private is None or dp is None or dp.global_batch is None:
            raise ValueError("keep_local needs DP-SGD with distributed noise")
        local = [p for name, p in self.model.named_parameters()
                 if p.requires_grad and is_local(name)]
        if not local:
            return
        assert dp.steps_per_epoch is not None
        own_batch = len(self.loader.dataset) / dp.steps_per_epoch
        self.optimizer.keep_local(local, dp.global_batch / own_batch)

    def load_shared_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Overwrite the given (e.g. aggregated) parameters in place; others stay as they are."""
        load_canonical_state_dict(self.module, state)

    def privacy_report(self) -> dict[str, float | int | bool | str] | None:
        """ε spent, δ, noise multiplier, clipping, sample rate, steps, and the learning rate,
        expected batch and model dropout with which DP-SGD ran (None without DP)."""
        if self._private is None or self.dp_config is None:
            return None
        trained = ",".join(self.config.trainable) if self.config.trainable else "all"
        rates = [m.p for m in self.module.modules() if isinstance(m, torch.nn.Dropout)]
        return {**privacy_report(self._private), "lr": self.config.lr,
                "expected_batch_size": self.config.batch_size, "trained": trained,
                "dropout": max(rates, default=0.0),
                "recipe_chose": ",".join(self.dp_config.recipe_chose)}

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue (identically without DP): tensors and plain data only.

        Safe to ``torch.save`` and to ``torch.load(..., weights_only=True)``.
        """
        return {
            "model": self.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "accountant": accountant_state(self._private) if self._private else None,
            "rng": {
                "loader": self._loader_generator.get_state(),
                "torch": self._torch_rng.clone(),
            },
            "epochs_done": self.epochs_done,
            "noise_multiplier": (
                float(self._private.optimizer.noise_multiplier) if self._private else None
            ),
        }

    def restore(self, checkpoint: Mapping[str, Any]) -> None:
        """Continue from :meth:`checkpoint` (a trainer built with the same data and configs)."""
        expected = float(self._private.optimizer.noise_multiplier) if self._private else None
        if checkpoint["noise_multiplier"] != expected:
            raise ValueError(
                f"checkpoint noise multiplier {checkpoint['noise_multiplier']} != {expected}: "
                "the trainer was built with a different DP configuration or training split"
            )
        self.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self._private is not None:
            load_accountant_state(self._private, checkpoint["accountant"])
        self._loader_generator.set_state(checkpoint["rng"]["loader"])
        self._torch_rng = checkpoint["rng"]["torch"].clone()
        self.epochs_done = int(checkpoint["epochs_done"])
