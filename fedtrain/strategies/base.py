"""The strategy interface, as run inside ONE hospital process, and parameter-sharing strategies.

A strategy decides what crosses hospital boundaries in each round. The round loop itself lives
once in fedtrain/run/hospital.py: for each round it calls ``strategy.train_round(r)``; at the end it
evaluates ``strategy.predict``. Strategies that average (part of) the model share only a securely
aggregated weighted mean (``ParameterSharing``); vertical and split learning override
``train_round`` with their encrypted per-batch protocols.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file

from fedtrain.run.config import TrainConfig
from fedtrain.secure import tags

REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls


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

    name: ClassVar[str]
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

    @staticmethod
    def open_session(rank: int, spec: dict[str, Any], config: TrainConfig) -> Any:
        """Open this party's session (its data, trainer, aggregator)."""
        from fedtrain.run.session import open_session

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


class ParameterSharing(Strategy):
    """Train locally, then replace the shared parameters by their secure weighted mean.

    Subclasses choose which parameters are shared with :meth:`is_shared`; the weight of a hospital
    is its number of training examples. Only the weighted sum and the total weight are revealed.
    """

    def is_shared(self, key: str) -> bool:
        """Whether parameter ``key`` (canonical spelling) is averaged across hospitals."""
        return True

    def train_round(self, round_index: int) -> RoundResult:
        loss = self.session.trainer.train_epochs(self.config.local_epochs)
        return RoundResult(train_loss=loss, exchanged_elements=self.exchange())

    def exchange(self) -> int:
        """Securely average the shared parameters; returns the number of elements exchanged."""
        state = self.session.trainer.shared_state()
        keys = sorted(k for k in state if self.is_shared(k))
        if not keys:
            return 0
        averaged = secure_mean(self.session.aggregator, {k: state[k] for k in keys},
                               float(self.session.n_train), tags.WEIGHTED_MODEL_SUM)
        self.session.trainer.load_shared_state(averaged)
        return sum(t.numel() for t in averaged.values())


def flatten(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (in sorted key order) into one float64 vector."""
    return torch.cat([tensors[k].detach().reshape(-1).to(torch.float64) for k in sorted(tensors)])


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten`, restoring shapes and dtypes of ``like``."""
    out, offset = {}, 0
    for key in sorted(like):
        n = like[key].numel()
        out[key] = flat[offset : offset + n].reshape(like[key].shape).to(like[key].dtype)
        offset += n
    return out


def secure_mean(aggregator: Any, tensors: dict[str, torch.Tensor], weight: float, what: str
                ) -> dict[str, torch.Tensor]:
    """Weighted mean of ``tensors`` over hospitals via one secure sum (weights revealed only
    as their total); ``what`` names it for the reveal audit."""
    mean, _ = aggregator.weighted_mean(flatten(tensors), weight, what=what)
    return unflatten(mean, tensors)
