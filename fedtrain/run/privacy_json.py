"""Reading RUN/privacy.json (written by fedtrain/run/outputs.py): the ε the parties spent.

No heavy imports: the CLI renders from it.
"""

from __future__ import annotations

from typing import Any


def record_level_epsilons(privacy: dict[str, Any] | None) -> list[float]:
    """The record-level ε each party spent, from a privacy.json (empty without --dp-epsilon)."""
    if not privacy or not privacy.get("dp_sgd"):
        return []
    return [float(h["epsilon"]) for h in (privacy.get("hospitals") or {}).values()
            if isinstance(h, dict) and "epsilon" in h]


def epsilon_spent(privacy: dict[str, Any] | None) -> float | None:
    """The largest record-level ε any party spent (None without --dp-epsilon)."""
    spent = record_level_epsilons(privacy)
    return max(spent) if spent else None
