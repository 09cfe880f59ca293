"""The strategy interface, as run inside ONE hospital process, and parameter-sharing strategies.

A strategy decides what crosses hospital boundaries in each round. The round loop itself lives
once in fedtrain/run/hospital.py: for each round it calls ``strategy.train_round(r)``; at the end it
evaluates ``strategy.predict``. Strategies that average (part of) the model share only a securely
aggregated weighted mean (``ParameterSharing``), after checking their own update
(fedtrain/updates/validation.py) and, with ``--central-dp``, clipping it and adding their
share of noise (fedtrain/updates/central_dp.py); vertical and split learning override
``train_round`` with their encrypted per-batch protocols.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.local_training import dp_distributed
from crypten_fl.fedtrain.local_training.proximal import ProximalTerm
from crypten_fl.fedtrain.models.pretrained import Pretrained, check_fits
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.tensors import flatten, unflatten
from crypten_fl.fedtrain.updates import central_dp
from crypten_fl.fedtrain.updates.server_optimizers import ServerOptimizer
from crypten_fl.fedtrain.updates.validation import (
    UpdateCheck,
    ValidationLog,
    check_update,
)
from safetensors.torch import load_file

#: ``emit(event, **fields)``: a progress event to the coordinator (fedtrain/party.py)
EmitFn = Callable[..., None]


def _no_events(event: str, **fields: Any) -> None:
    """The event sink of a strategy used outside a party process."""


@dataclass
class RoundResult:
    """What one hospital reports about one round (its own loss; nothing about its data)."""

    train_loss: float | None  # None where the party cannot compute it (no labels)
    exchanged_elements: int = 0


class Strategy(ABC):
    """One federated algorithm inside one hospital process.

    Args:
        config: the run's options.
        session: the hospital's session (trainer, data, aggregator, rank): see run/hospital.py.
    """

    # -- what the strategy is and can do: every layer asks these, never the name ----------------
    #: its name in the registry (the entry point, `--strategy NAME`)
    name: ClassVar[str]
    #: one line for `--help` and the docs
    summary: ClassVar[str] = ""
    #: the federation it trains on: "horizontal" (hospitals hold other patients, same features)
    #: or "vertical" (parties hold other features of the same stays)
    partition: ClassVar[str] = "horizontal"
    #: one process holds every hospital's data (the pooled baseline), not one process per hospital
    single_process: ClassVar[bool] = False
    #: it multiplies secret-shared values, so Beaver triples come from the TTP dealer
    needs_ttp: ClassVar[bool] = False
    #: each hospital ends with a model of its own (evaluated and audited with that one)
    personalised: ClassVar[bool] = False
    #: every party holds its final model in plaintext (a membership-inference audit can use it)
    plaintext_model: ClassVar[bool] = True
    #: each round a hospital contributes a parameter update to a secure mean, through the one
    #: pipeline of ParameterSharing.share_update (checked: non-finite, --max-update-norm)
    shares_updates: ClassVar[bool] = False
    #: hospital-level DP (--central-dp) covers everything the strategy reveals: every hospital's
    #: contribution is its clipped, noised update (not so for split, whose server part is trained
    #: on activations and revealed without noise)
    supports_central_dp: ClassVar[bool] = False
    #: the rounds go on without a hospital that dropped out (--min-hospitals)
    tolerates_dropouts: ClassVar[bool] = False
    #: the strategy supports record-level DP (--dp-epsilon): DP-SGD in local training, or its own
    #: mechanisms on what it exchanges (split, vertical)
    supports_dp_sgd: ClassVar[bool] = True
    #: record-level DP by the DP recipe's DP-SGD in local training (False: the strategy's own
    #: mechanisms, which take --max-grad-norm and --dp-lr (default --lr) but not the other
    #: recipe options)
    uses_dp_recipe: ClassVar[bool] = True
    #: of the recipe's options, those a strategy's own DP mechanism takes all the same
    own_dp_options: ClassVar[frozenset[str]] = frozenset()
    #: DP-SGD with --dp-noise distributed: one DP-SGD step of the whole federation per secure
    #: sum of noise-shared gradients (personal layers, FedPer's, keep their full local noise)
    supports_distributed_dp: ClassVar[bool] = False
    #: --dp-noise dealer: the TTP dealer draws the noise of its encrypted gradient sums once
    #: and secret-shares it (fedtrain/secure/dealer_noise.py; split and vertical)
    supports_dealer_dp: ClassVar[bool] = False
    #: what a user should expect from record-level DP with this strategy, where the measured
    #: figures call for a warning (shown by ``train`` after a DP run; None: nothing to say)
    dp_note: ClassVar[str | None] = None
    #: what this hospital reveals, in which form, to whom (docs/strategies.md)
    reveals: ClassVar[str]
    #: the kinds of plaintext (fedtrain/secure/tags.py) a party may obtain; tests/test_reveals.py
    #: checks the parties obtain nothing else
    receives: ClassVar[frozenset[str]] = frozenset()
    #: file stem of a party's final model in RUN/ (``{index}``: the party's index in that run)
    final_model: ClassVar[str] = "model_hospital_{index}"

    def __init__(self, config: TrainConfig, session: Any) -> None:
        self.config = config
        self.session = session
        #: progress events to the coordinator; the round loop sets the party's sink
        self.emit: EmitFn = _no_events

    @classmethod
    def receives_with(cls, config: TrainConfig) -> frozenset[str]:
        """The kinds of plaintext a party obtains in a run with ``config``."""
        return cls.receives

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        """Raise UserError for an option this strategy cannot honour (checked before any
        process starts)."""
        def those(trait: str) -> str:
            from crypten_fl.fedtrain import strategies

            names = [n for n in strategies.available() if getattr(strategies.get(n), trait)]
            return ", ".join(names)

        if config.dp_epsilon is not None and not cls.supports_dp_sgd:
            raise UserError(f"--dp-epsilon is not supported with --strategy {cls.name} yet "
                            f"(DP-SGD covers {those('supports_dp_sgd')})")
        if config.dp_epsilon is not None and not cls.uses_dp_recipe:
            for option, value in (("--dp-batch-size", config.dp_batch_size),
                                  ("--dp-clipping", config.dp_clipping),
                                  ("--dp-trainable", config.dp_trainable)):
                if value is not None and option not in cls.own_dp_options:
                    raise UserError(f"{option} is not used by --strategy {cls.name}: its DP "
                                    "mechanism batches and clips its own way (docs/privacy.md)")
        if config.distributed_dp:
            cls._check_distributed_dp(config, those("supports_distributed_dp"))
        if config.dealer_dp and not cls.supports_dealer_dp:
            raise UserError(f"--dp-noise dealer works with --strategy "
                            f"{those('supports_dealer_dp')}, not {cls.name} (the strategies "
                            "whose encrypted models already need the TTP dealer)")
        if config.min_hospitals is not None and not cls.tolerates_dropouts:
            raise UserError(f"--min-hospitals: --strategy {cls.name} cannot continue without "
                            f"a hospital (dropout tolerance covers {those('tolerates_dropouts')})")
        for used, option, trait in (
                (config.central_dp, "--central-dp", "supports_central_dp"),
                (config.max_update_norm is not None, "--max-update-norm", "shares_updates"),
                (bool(config.server_options_given()),
                 "/".join(config.server_options_given()), "shares_updates"),
                (config.prox_mu > 0, "--prox-mu", "shares_updates")):
            if used and not getattr(cls, trait):
                raise UserError(f"{option} works with --strategy {those(trait)}, not {cls.name}")

    @classmethod
    def check_pretrained(cls, pretrained: Pretrained, config: TrainConfig,
                         schema: dict[str, Any], option: str = "--init-from") -> None:
        """Raise one UserError if a party with data ``schema`` cannot start from ``pretrained``
        (--init-from): here every party's model is the whole ICU Transformer, so the model must
        have the run's architecture and the hospitals' features."""
        check_fits(pretrained, config, schema, option)

    @classmethod
    def _check_distributed_dp(cls, config: TrainConfig, supported: str) -> None:
        """--dp-noise distributed: a strategy that supports it (what else it excludes is the
        strategy's to say: ParameterSharing)."""
        if not cls.supports_distributed_dp:
            raise UserError(f"--dp-noise distributed works with --strategy {supported}, not "
                            f"{cls.name} (every parameter must be trained together)")

    @staticmethod
    def open_session(rank: int, spec: dict[str, Any], config: TrainConfig) -> Any:
        """Open this party's session (its data, trainer, aggregator)."""
        from crypten_fl.fedtrain.sessions.hospital import open_session

        return open_session(rank, spec, config)

    @abstractmethod
    def train_round(self, round_index: int) -> RoundResult:
        """Local training plus this strategy's secure exchange for one round."""

    def predict(self, inputs: Any) -> np.ndarray:
        """Probabilities ``(N, 12)`` of this hospital's final model on ``inputs``."""
        return self.session.trainer.predict(inputs)

    def models_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        """File stem → state dict of the final model(s) this hospital writes."""
        return {f"model_hospital_{self.session.rank}": self.session.trainer.state_dict()}

    @staticmethod
    def initial_state(session: Any) -> dict[str, torch.Tensor]:
        """What a party started from with --init-from (privacy.json records its digest): its
        model's weights, loaded from the pretrained model."""
        return session.trainer.state_dict()

    @classmethod
    def final_model_files(cls, index: int) -> list[str]:
        """Files in RUN/ holding party ``index``'s final model (what :meth:`load_final` reads)."""
        return [f"{cls.final_model.format(index=index)}.safetensors"]

    def load_final(self, run_dir: Path, index: int | None = None) -> None:
        """Load the final model party ``index`` (default: this rank) saved in ``run_dir``."""
        (name,) = self.final_model_files(self.session.rank if index is None else index)
        self.session.trainer.load_state_dict(load_file(str(Path(run_dir) / name)))

    def finish(self) -> None:  # noqa: B027  (optional hook)
        """Called once after the last round, before the final evaluation."""

    def extra_state(self) -> dict[str, torch.Tensor]:
        """State to checkpoint besides the trainer's (e.g. shares of an encrypted model)."""
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Restore :meth:`extra_state`."""

    def privacy_report(self) -> dict[str, Any] | None:
        """This party's DP accounting for privacy.json (None without DP): its trainer's DP-SGD
        unless the strategy runs its own mechanisms (split, vertical)."""
        return self.session.trainer.privacy_report()

    def validation_report(self) -> dict[str, Any] | None:
        """Updates checked and rejected by this hospital (None: it validates none)."""
        return None

    def global_state(self) -> dict[str, torch.Tensor]:
        """What every hospital of the group holds identically between rounds (what a hospital
        that rejoins is handed, fedtrain/run/rejoin.py); empty if nothing is shared."""
        return {}

    def load_global_state(self, state: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Adopt :meth:`global_state` received from the group."""


@dataclass
class SharedBlock:
    """Parameters a hospital contributes to one secure mean per round.

    Args:
        tag: what the weighted sum is, for the reveal audit (without central DP).
        weight: this hospital's weight in the mean (without central DP).
        trained: its values after local training.
        start: its values at the start of the round (its update is ``trained - start``).
        base: the common value the mean replaces: kept if no hospital's update is accepted;
            with central DP the noisy mean update is added to it.
    """

    tag: str
    weight: float
    trained: dict[str, torch.Tensor]
    start: dict[str, torch.Tensor]
    base: dict[str, torch.Tensor]

    def update(self) -> torch.Tensor:
        """``trained - start`` as one float64 vector."""
        return flatten(self.trained) - flatten(self.start)


class ParameterSharing(Strategy):
    """Train locally, then replace the shared parameters by their secure weighted mean.

    Subclasses choose which parameters are shared with :meth:`is_shared`; the weight of a hospital
    is its number of training examples. Only the weighted sum and the total weight are revealed.
    Before sharing, a hospital checks its own update and contributes nothing (weight 0) if it is
    not finite or longer than ``--max-update-norm``. With ``--central-dp`` it shares its clipped,
    noised update instead and the global model moves by the noisy unweighted mean update.
    """

    def __init__(self, config: TrainConfig, session: Any) -> None:
        super().__init__(config, session)
        self.validation = ValidationLog()
        self.noise = (central_dp.mechanism(config, session.aggregator.world_size)
                      if config.central_dp else None)
        self.server_optimizer = ServerOptimizer(config.server_settings())
        if self._distributed_dp_sgd(config):  # personal layers are never summed
            session.trainer.keep_local(lambda name: not self.is_shared(name))

    @classmethod
    def receives_with(cls, config: TrainConfig) -> frozenset[str]:
        """With central DP the (weighted) means are replaced by the noisy sum; with distributed
        DP-SGD noise by the record count and each step's noisy gradient sum."""
        if cls._distributed_dp_sgd(config):
            return frozenset({tags.MOMENTS, tags.TRAINING_RECORDS, tags.NOISY_GRADIENT_SUM,
                              tags.METRIC_HISTOGRAMS})
        if not config.central_dp:
            return cls.receives
        means = {tags.WEIGHTED_MODEL_SUM, tags.MEAN_OF_HEADS}
        return (cls.receives - means) | ({tags.NOISY_MODEL_SUM} if cls.receives & means else set())

    @classmethod
    def _distributed_dp_sgd(cls, config: TrainConfig) -> bool:
        """Whether the run's DP-SGD (the trainer's, with the DP recipe) has distributed noise:
        then every step is a secure sum of noisy gradients instead of a round's model mean.
        Not split: its DP is its own mechanism, and its distributed noise only the server
        layer's (split.py)."""
        return config.distributed_dp and cls.uses_dp_recipe

    @classmethod
    def _check_distributed_dp(cls, config: TrainConfig, supported: str) -> None:
        """Distributed DP-SGD shares no model updates, so no option acting on them holds."""
        super()._check_distributed_dp(config, supported)
        if not cls._distributed_dp_sgd(config):
            return
        for used, option in ((config.central_dp, "--central-dp"),
                             (config.min_hospitals is not None, "--min-hospitals"),
                             (config.max_update_norm is not None, "--max-update-norm"),
                             (config.prox_mu > 0, "--prox-mu"),
                             (bool(config.server_options_given()),
                              "/".join(config.server_options_given()))):
            if used:
                why = ("every hospital must add its noise share to every step"
                       if option == "--min-hospitals" else
                       "no model updates are shared, only each step's noisy gradient sum")
                raise UserError(f"{option} does not work with --dp-noise distributed ({why})")

    def is_shared(self, key: str) -> bool:
        """Whether parameter ``key`` (canonical spelling) is averaged across hospitals."""
        return True

    def global_state(self) -> dict[str, torch.Tensor]:
        """The shared parameters and the server optimizer's state."""
        shared = {k: v for k, v in self.session.trainer.state_dict().items() if self.is_shared(k)}
        return {**shared, **{f"{SERVER_OPT}{k}": v for k, v in self._server_state().items()}}

    def load_global_state(self, state: dict[str, torch.Tensor]) -> None:
        self.session.trainer.load_shared_state(
            {k: v for k, v in state.items() if not k.startswith(SERVER_OPT)})
        self.server_optimizer.load_state(_prefixed(state, SERVER_OPT))

    def _server_state(self) -> dict[str, torch.Tensor]:
        """The server optimizer's state, with m and v present (zeros before the first step) so
        that every hospital's copy has the same shape (a rejoining one receives it)."""
        if self.server_optimizer.settings.is_plain_fedavg():
            return {}
        state = self.server_optimizer.state()
        if "m" not in state:
            start = self.session.trainer.state_dict()
            size = sum(flatten(block.base).numel() for block in self.shared_blocks(start))
            state |= {"m": torch.zeros(size, dtype=torch.float64),
                      "v": torch.zeros(size, dtype=torch.float64)}
        return state

    def proximal_term(self) -> ProximalTerm | None:
        """FedProx's pull of the shared parameters toward this round's global model
        (None without ``--prox-mu``)."""
        if self.config.prox_mu == 0:
            return None
        return ProximalTerm.around(self.session.trainer.model, self.config.prox_mu,
                                   self.is_shared)

    def train_round(self, round_index: int) -> RoundResult:
        if self._distributed_dp_sgd(self.config):
            return self._train_round_distributed_dp()
        start = self.session.trainer.state_dict()
        loss = self.session.trainer.train_epochs(self.config.local_epochs,
                                                 proximal=self.proximal_term())
        return RoundResult(train_loss=loss, exchanged_elements=self.share_update(round_index,
                                                                                 start))

    def _train_round_distributed_dp(self) -> RoundResult:
        """``--local-epochs`` passes of DP-SGD steps of the whole federation, each step one
        secure sum of the shared parameters' noise-shared gradient sums
        (fedtrain/local_training/dp_distributed.py): every hospital applies the same revealed
        sum, so all hold the same shared parameters and no model mean is needed."""
        trainer = self.session.trainer
        loss = trainer.train_epochs(self.config.local_epochs)  # a secure sum every step
        shared = sum(p.numel() for name, p in trainer.model.named_parameters()
                     if p.requires_grad and self.is_shared(name))
        steps = self.config.local_epochs * self.session.federation.steps_per_epoch
        return RoundResult(train_loss=loss, exchanged_elements=steps * shared)

    def privacy_report(self) -> dict[str, Any] | None:
        private = super().privacy_report()
        if private is None or not self._distributed_dp_sgd(self.config):
            return private
        report = {**private, **dp_distributed.report(self.session.federation, private)}
        personal = sorted({k.rsplit(".", 1)[0] for k in self.session.trainer.state_dict()
                           if not self.is_shared(k)})
        if personal:
            report["personal_layers"] = (f"{', '.join(personal)}: never summed or sent; "
                                         "noised with this hospital's full noise")
        return report

    def shared_blocks(self, start: dict[str, torch.Tensor]) -> list[SharedBlock]:
        """What this hospital shares this round (``start``: its state at the round's start)."""
        trained = {k: v for k, v in self.session.trainer.state_dict().items() if self.is_shared(k)}
        if not trained:
            return []
        begin = {k: start[k] for k in trained}
        return [SharedBlock(tags.WEIGHTED_MODEL_SUM, float(self.session.n_train), trained, begin,
                            begin)]

    def adopt(self, means: list[dict[str, torch.Tensor]]) -> None:
        """Take the new common values, one per block of :meth:`shared_blocks`."""
        self.session.trainer.load_shared_state(means[0])

    def share_update(self, round_index: int, start: dict[str, torch.Tensor]) -> int:
        """Check, share and adopt this round's update; returns the number of elements shared."""
        blocks = self.shared_blocks(start)
        if not blocks:
            return 0
        update = torch.cat([block.update() for block in blocks])
        check = check_update(update, self.config.max_update_norm)
        if self.validation.record(round_index, check) is not None:
            self._discard_round(round_index, check, start)
        if self.noise is None:
            means = [weighted_block_mean(self.session.aggregator, block, check.accepted)
                     for block in blocks]
        else:
            means = self._noisy_means(blocks, update, check.accepted)
        self.adopt(self._server_optimizer_step(blocks, means))
        return sum(flatten(block.trained).numel() for block in blocks)

    def _discard_round(self, round_index: int, check: UpdateCheck,
                       start: dict[str, torch.Tensor]) -> None:
        """A rejected hospital logs it and puts its unshared parameters back to the round's
        start; its shared ones become the new global values like everyone's."""
        self.emit("update_rejected", round=round_index, hospital=self.session.hospitals[0],
                  reason=check.reason, norm=check.norm if np.isfinite(check.norm) else None)
        personal = {k: v for k, v in start.items() if not self.is_shared(k)}
        if personal:
            self.session.trainer.load_shared_state(personal)

    def _noisy_means(self, blocks: list[SharedBlock], update: torch.Tensor, accepted: bool
                     ) -> list[dict[str, torch.Tensor]]:
        """Central DP: one secure sum of the clipped, noised joint update of all blocks."""
        assert self.noise is not None
        total = self.session.aggregator.sum(self.noise.contribution(update, accepted),
                                            what=tags.NOISY_MODEL_SUM)
        mean = central_dp.mean_update(total)
        means, offset = [], 0
        for block in blocks:
            base = flatten(block.base)
            means.append(unflatten(base + mean[offset : offset + base.numel()], block.base))
            offset += base.numel()
        return means

    def _server_optimizer_step(self, blocks: list[SharedBlock], means: list[dict[str, torch.Tensor]]
                     ) -> list[dict[str, torch.Tensor]]:
        """The server optimizer's step from the common values to the revealed means (all blocks
        as one vector). Plain FedAvg adopts the means as they are; a round in which no update
        was accepted (means equal to the common values) leaves model and state unchanged."""
        if self.server_optimizer.settings.is_plain_fedavg():
            return means
        base = torch.cat([flatten(block.base) for block in blocks])
        mean = torch.cat([flatten(m) for m in means])
        if torch.equal(base, mean):
            return means
        new = self.server_optimizer.step(base, mean)
        out, offset = [], 0
        for block in blocks:
            n = flatten(block.base).numel()
            out.append(unflatten(new[offset : offset + n], block.base))
            offset += n
        return out

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {**self.validation.state(),
                **{f"{SERVER_OPT}{k}": v for k, v in self.server_optimizer.state().items()}}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.validation = ValidationLog.from_state(state)
        self.server_optimizer.load_state(_prefixed(state, SERVER_OPT))

    def validation_report(self) -> dict[str, Any] | None:
        return self.validation.report()


#: key prefix of the server optimizer's state in checkpoints and in the global state
SERVER_OPT = "server_opt."


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def weighted_block_mean(aggregator: Any, block: SharedBlock, accepted: bool
                        ) -> dict[str, torch.Tensor]:
    """Σ w_k·trained_k / Σ w_k over the accepted hospitals, from one secure sum of
    [w·trained, w]; a rejected hospital contributes zeros and weight 0. ``block.base`` if no
    hospital was accepted."""
    flat = flatten(block.trained)
    weight = block.weight if accepted else 0.0
    packed = torch.cat([flat * weight if accepted else torch.zeros_like(flat),
                        torch.tensor([weight], dtype=torch.float64)])
    total = aggregator.sum(packed, what=block.tag)
    total_weight = float(total[-1])
    if total_weight <= 0:
        return block.base
    return unflatten(total[:-1] / total_weight, block.trained)
