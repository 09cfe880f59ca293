"""A hospital's checks on its own model update before sharing it, and the log of rejections.

An update (shared parameters after local training minus those at the start of the round) with any
non-finite value, or with L2 norm above ``--max-update-norm``, is rejected: the hospital still takes
part in the secure sum (so nobody waits and nobody learns which hospital was rejected) but
contributes zeros with weight 0, logs the rejection and adopts the new global model.

(Tests corrupt an update with ``CRYPTEN_FL_CORRUPT_UPDATE``: fedtrain/faults.py.)

>>> check_update(torch.tensor([3.0, 4.0]), max_norm=4.0)
UpdateCheck(accepted=False, norm=5.0, reason='norm above --max-update-norm')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

NON_FINITE = "non-finite"
ABOVE_BOUND = "norm above --max-update-norm"
_REASONS = (NON_FINITE, ABOVE_BOUND)


@dataclass(frozen=True)
class UpdateCheck:
    """Outcome of :func:`check_update` (``norm`` is NaN or inf for a non-finite update)."""

    accepted: bool
    norm: float
    reason: str | None = None


def check_update(update: torch.Tensor, max_norm: float | None) -> UpdateCheck:
    """Reject a non-finite update always, and one longer than ``max_norm`` if given."""
    norm = float(torch.linalg.vector_norm(update.to(torch.float64)))
    if not bool(torch.isfinite(update).all()):
        return UpdateCheck(False, norm, NON_FINITE)
    if max_norm is not None and norm > max_norm:
        return UpdateCheck(False, norm, ABOVE_BOUND)
    return UpdateCheck(True, norm)


@dataclass
class Rejection:
    """One rejected update (``norm`` None when it was not finite)."""

    round: int
    reason: str
    norm: float | None


@dataclass
class ValidationLog:
    """Rounds checked and updates rejected by one hospital, checkpointed with its state."""

    checked: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def record(self, round_index: int, check: UpdateCheck) -> Rejection | None:
        """Count one checked update; return the rejection it records, if any."""
        self.checked += 1
        if check.accepted:
            return None
        assert check.reason is not None
        rejection = Rejection(round_index, check.reason,
                              check.norm if math.isfinite(check.norm) else None)
        self.rejections.append(rejection)
        return rejection

    def state(self) -> dict[str, torch.Tensor]:
        """As tensors (safe for ``torch.load(weights_only=True)``)."""
        rows = [[r.round, _REASONS.index(r.reason), math.nan if r.norm is None else r.norm]
                for r in self.rejections]
        return {"validation.checked": torch.tensor([self.checked]),
                "validation.rejections": torch.tensor(rows, dtype=torch.float64).reshape(-1, 3)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> ValidationLog:
        """Inverse of :meth:`state`; an empty log if ``state`` holds none."""
        if "validation.checked" not in state:
            return cls()
        rejections = [Rejection(int(r), _REASONS[int(c)], None if math.isnan(n) else float(n))
                      for r, c, n in state["validation.rejections"].tolist()]
        return cls(int(state["validation.checked"][0]), rejections)

    def report(self) -> dict[str, Any]:
        """For the run's validation.json."""
        return {"checked": self.checked, "rejected": len(self.rejections),
                "rejections": [r.__dict__ for r in self.rejections]}
