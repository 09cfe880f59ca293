"""Per-hospital checkpoints: ``RUN/checkpoints/round_<r>/hospital_<k>.pt``, on hospital k's disk.

A checkpoint holds what the hospital needs to continue identically (its trainer state, the
strategy's extra state, torch's RNG) and the securely pooled normalisation moments, so that a
hospital that dropped out can rejoin a running group without a new pooling of statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.sessions.hospital import HospitalSession, Session


def checkpoint_path(run_dir: Path, round_index: int, hospital: int) -> Path:
    """Where ``hospital`` keeps its state after ``round_index``."""
    return run_dir / "checkpoints" / f"round_{round_index}" / f"hospital_{hospital}.pt"


def save(strategy: strategies.Strategy, session: Session, run_dir: Path, round_index: int
         ) -> None:
    """Write this hospital's state after ``round_index`` (atomically)."""
    path = checkpoint_path(run_dir, round_index, session.hospitals[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state: dict[str, Any] = {"trainer": session.trainer.checkpoint(),
                             "strategy": strategy.extra_state(),
                             "torch_rng": torch.get_rng_state()}
    if isinstance(session, HospitalSession) and session.pooled_moments is not None:
        state["pooled_moments"] = session.pooled_moments
    torch.save(state, tmp)
    tmp.replace(path)


def latest(run_dir: Path, hospital: int, at_most: int) -> int:
    """The last round up to ``at_most`` this hospital checkpointed (0 = none)."""
    rounds = [int(p.parent.name.split("_")[1])
              for p in (run_dir / "checkpoints").glob(f"round_*/hospital_{hospital}.pt")]
    return max((r for r in rounds if r <= at_most), default=0)


def load(run_dir: Path, round_index: int, hospital: int) -> dict[str, Any]:
    """The raw checkpoint of ``hospital`` after ``round_index``."""
    return torch.load(checkpoint_path(run_dir, round_index, hospital), weights_only=True)


def restore(strategy: strategies.Strategy, session: Session, state: dict[str, Any]) -> None:
    """Put a loaded checkpoint back into the session and strategy."""
    session.trainer.restore(state["trainer"])
    strategy.load_extra_state(state["strategy"])
    torch.set_rng_state(state["torch_rng"])
