"""Fault injection for the tests and benchmarks of crash handling (unset in normal runs).

- ``CRYPTEN_FL_FAIL_AT="<hospital>:<round>"``: the hospital raises an error after that round's
  checkpoint (a clean crash between rounds).
- ``CRYPTEN_FL_KILL_AT="<hospital>:<round>[,<hospital>:<round>...]"``: the hospital SIGKILLs
  itself in the middle of that round — after its local training, just before its masked update
  is revealed — as a machine that loses power would.
- ``CRYPTEN_FL_STALL_AT=...`` (same form): the hospital SIGSTOPs itself at that point instead —
  alive, connections open, silent — as a hung machine or a cut link would look to the others.
"""

from __future__ import annotations

import os
import signal

_where: dict[str, str] = {"hospital": "", "round": "0"}


def at_round(hospital: int | str, round_index: int) -> None:
    """Tell the injector where this process is (called by the round loop)."""
    _where.update(hospital=str(hospital), round=str(round_index))


def _targets(variable: str) -> set[str]:
    return {t.strip() for t in os.environ.get(variable, "").split(",") if t.strip()}


def after_round() -> None:
    """Raise if CRYPTEN_FL_FAIL_AT names this hospital and round."""
    if f"{_where['hospital']}:{_where['round']}" in _targets("CRYPTEN_FL_FAIL_AT"):
        raise RuntimeError(f"injected fault after round {_where['round']}")


def mid_exchange() -> None:
    """SIGKILL (CRYPTEN_FL_KILL_AT) or SIGSTOP (CRYPTEN_FL_STALL_AT) this process if the
    variable names this hospital and round."""
    here = f"{_where['hospital']}:{_where['round']}"
    if here in _targets("CRYPTEN_FL_KILL_AT"):
        os.kill(os.getpid(), signal.SIGKILL)
    if here in _targets("CRYPTEN_FL_STALL_AT"):
        os.kill(os.getpid(), signal.SIGSTOP)
