"""The fault injector wraps nothing unless a fault is asked for, and then only in that process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crypten_fl.fedtrain import faults
from crypten_fl.fedtrain.party import PartyContext
from crypten_fl.fedtrain.run import rejoin
from crypten_fl.fedtrain.secure.aggregator import SecureAggregator

REPO = Path(__file__).resolve().parents[1]


def test_without_a_requested_fault_nothing_is_wrapped(monkeypatch) -> None:
    for variable in faults.VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    seams = (rejoin.admit_rejoining, PartyContext.emit, SecureAggregator.share)
    assert faults.install_if_requested() is False
    assert (rejoin.admit_rejoining, PartyContext.emit, SecureAggregator.share) == seams


def test_a_requested_fault_wraps_the_seams_of_its_own_process() -> None:
    script = ("import os; os.environ['CRYPTEN_FL_FAIL_AT'] = '0:1'\n"
              "from crypten_fl.fedtrain import faults\n"
              "from crypten_fl.fedtrain.party import PartyContext\n"
              "before = PartyContext.emit\n"
              "assert faults.install_if_requested()\n"
              "assert PartyContext.emit is not before\n"
              "faults.at_round(0, 1)\n"
              "try:\n    faults.after_round()\nexcept RuntimeError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "injected fault after round 1"
