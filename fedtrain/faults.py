"""Fault injection for the tests and benchmarks of crash handling: one mechanism, off by default.

Production code holds no fault hooks. A party process calls :func:`install_if_requested` once at
start; only if one of the variables below is set does it wrap three seams of the normal code
(by monkeypatching, in that process only):

- the start of a round (``run.rejoin.admit_rejoining``, called first in every round): where the
  process is, hospital and round;
- ``PartyContext.emit`` of a ``round`` event, after the round's checkpoint and its report;
- ``SecureAggregator.share``, after a party masked its contribution, before the reveal;
- ``ParameterSharing.shared_blocks``, what a hospital is about to share.

Variables (``<hospital>:<round>``, several separated by commas where noted):

- ``CRYPTEN_FL_FAIL_AT``: the hospital raises an error after that round's checkpoint (a clean
  crash between rounds);
- ``CRYPTEN_FL_KILL_AT`` (several): the hospital SIGKILLs itself in the middle of that round,
  after its local training, just before its masked update is revealed, as a machine that loses
  power would;
- ``CRYPTEN_FL_STALL_AT`` (several): the hospital SIGSTOPs itself at that point instead: alive,
  connections open, silent, as a hung machine or a cut link would look to the others;
- ``CRYPTEN_FL_CORRUPT_UPDATE="<hospital>:<round>[:<factor>]"``: that hospital's update of that
  round gets a NaN (no factor) or is multiplied by ``factor`` before it is checked and shared.
"""

from __future__ import annotations

import importlib
import math
import os
import signal
from typing import Any

import torch

FAIL_AT, KILL_AT, STALL_AT = "CRYPTEN_FL_FAIL_AT", "CRYPTEN_FL_KILL_AT", "CRYPTEN_FL_STALL_AT"
CORRUPT_UPDATE = "CRYPTEN_FL_CORRUPT_UPDATE"
VARIABLES = (FAIL_AT, KILL_AT, STALL_AT, CORRUPT_UPDATE)

_where: dict[str, str] = {"hospital": "", "round": "0"}
_installed = False


def at_round(hospital: int | str, round_index: int) -> None:
    """Say where this process is (the installed round seam does; tests of the aggregator alone
    call it directly)."""
    _where.update(hospital=str(hospital), round=str(round_index))


def _targets(variable: str) -> set[str]:
    return {t.strip() for t in os.environ.get(variable, "").split(",") if t.strip()}


def _here() -> str:
    return f"{_where['hospital']}:{_where['round']}"


def after_round() -> None:
    """Raise if CRYPTEN_FL_FAIL_AT names this hospital and round."""
    if _here() in _targets(FAIL_AT):
        raise RuntimeError(f"injected fault after round {_where['round']}")


def mid_exchange() -> None:
    """SIGKILL (CRYPTEN_FL_KILL_AT) or SIGSTOP (CRYPTEN_FL_STALL_AT) this process if the
    variable names this hospital and round."""
    if _here() in _targets(KILL_AT):
        os.kill(os.getpid(), signal.SIGKILL)
    if _here() in _targets(STALL_AT):
        os.kill(os.getpid(), signal.SIGSTOP)


def injected_corruption(hospital: int | str, round_index: int) -> float | None:
    """The corruption CRYPTEN_FL_CORRUPT_UPDATE asks for here: a factor, NaN, or None."""
    parts = os.environ.get(CORRUPT_UPDATE, "").split(":")
    if parts[:2] != [str(hospital), str(round_index)]:
        return None
    return float(parts[2]) if len(parts) > 2 else math.nan


def corrupt(update: torch.Tensor, factor: float) -> torch.Tensor:
    """``update`` with a NaN in its first element (``factor`` NaN) or multiplied by ``factor``."""
    if not math.isnan(factor):
        return update * factor
    out = update.clone()
    out.view(-1)[0] = math.nan
    return out


def requested() -> bool:
    """Whether the environment asks for any fault."""
    return any(os.environ.get(v) for v in VARIABLES)


def install_if_requested(context: type | None = None) -> bool:
    """Wrap the seams of this process if a fault is requested (once); whether it did.

    ``context``: the party's PartyContext class (the party module runs as ``__main__``, so its
    class is not the one an import of ``crypten_fl.fedtrain.party`` would give).
    """
    global _installed
    if _installed or not requested():
        return _installed
    # the seams are looked up by name: the injector patches the layers from outside, as a test
    # would, and is not itself part of them (the party, at the bottom, is what installs it)
    rejoin, party, aggregator = (importlib.import_module(f"crypten_fl.fedtrain.{name}")
                                 for name in ("run.rejoin", "party", "secure.aggregator"))
    SecureAggregator, PartyContext = aggregator.SecureAggregator, context or party.PartyContext
    admit, emit, share = rejoin.admit_rejoining, PartyContext.emit, SecureAggregator.share

    def admit_and_mark(strategy: Any, last_round: int) -> Any:
        hospitals = strategy.session.hospitals
        at_round(hospitals[0] if len(hospitals) == 1 else "pooled", last_round + 1)
        _corrupt_what(strategy)
        return admit(strategy, last_round)

    def emit_then_fail(self: Any, event: str, **fields: Any) -> None:
        emit(self, event, **fields)
        if event == "round":  # the round is checkpointed and reported: a clean crash after it
            after_round()

    def share_then_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = share(self, *args, **kwargs)
        mid_exchange()
        return result

    rejoin.admit_rejoining = admit_and_mark
    PartyContext.emit = emit_then_fail  # type: ignore[method-assign]
    SecureAggregator.share = share_then_stop  # type: ignore[method-assign]
    _installed = True
    return True


def _corrupt_what(strategy: Any) -> None:
    """Wrap this strategy's ``shared_blocks`` (its own, whichever class defines it) so that
    CRYPTEN_FL_CORRUPT_UPDATE corrupts what it is about to share."""
    if getattr(strategy, "_faults_installed", False) or not hasattr(strategy, "shared_blocks"):
        return
    tensors = importlib.import_module("crypten_fl.fedtrain.secure.tensors")
    blocks_of = strategy.shared_blocks

    def corrupted_blocks(start: Any) -> Any:
        blocks = blocks_of(start)
        factor = injected_corruption(strategy.session.hospitals[0], int(_where["round"]))
        if factor is not None:
            for block in blocks:
                block.trained = tensors.unflatten(
                    tensors.flatten(block.start) + corrupt(block.update(), factor), block.trained)
        return blocks

    strategy.shared_blocks = corrupted_blocks
    strategy._faults_installed = True
