"""Crash a real training run after its first round, then resume it."""

from __future__ import annotations

from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import TrainSummary, train


def crash_after_round_1_and_resume(config: TrainConfig, out: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> TrainSummary:
    """Hospital 1 fails after round 1's checkpoint; ``--resume`` finishes the run."""
    monkeypatch.setenv("CRYPTEN_FL_FAIL_AT", "1:1")
    with pytest.raises(UserError, match="Last completed round: 1"):
        train(config, out)
    monkeypatch.delenv("CRYPTEN_FL_FAIL_AT")
    summary = train(config, out, resume=True)
    assert summary.resumed_from == 1
    return summary
