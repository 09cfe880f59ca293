"""Federated strategies, one module each, behind the interface in base.py.

The registry is the entry-point group ``crypten_fl.strategies`` (pyproject.toml): the only list
of strategies. Its names are read without importing anything (the command line lists them
instantly); :func:`get` imports a strategy's module when it is used. What a strategy is and can
do is declared on its class (``Strategy.partition``, ``tolerates_dropouts``, ``needs_ttp`` ...),
and every layer asks the class, never the name.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from crypten_fl.common.errors import UserError

if TYPE_CHECKING:
    from crypten_fl.fedtrain.config import TrainConfig
    from crypten_fl.fedtrain.strategies.base import Strategy

GROUP = "crypten_fl.strategies"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def refresh() -> None:
    """Read the registry again (after a plug-in was installed into this running process)."""
    _entry_points.cache_clear()


def available() -> list[str]:
    """Names of every registered strategy (no strategy module is imported)."""
    return list(_entry_points())


def get(name: str) -> type[Strategy]:
    """The strategy class registered under ``name`` (UserError naming the choices if none)."""
    point = _entry_points().get(name)
    if point is None:
        raise UserError(f"--strategy {name!r}: choose one of {', '.join(available())}")
    cls = point.load()
    if getattr(cls, "name", None) != name:
        raise UserError(f"strategy entry point {name!r} loads {point.value}, whose name is "
                        f"{getattr(cls, 'name', None)!r}")
    return cls


def validate(config: TrainConfig) -> TrainConfig:
    """``config.validate()``, the hospital-level DP options, and what its strategy can do
    (DP-SGD, central DP, update checks, dropouts): every check made before a process starts."""
    from crypten_fl.fedtrain.updates import central_dp

    cls = get(config.strategy)
    config.validate()
    cls.check_config(config)
    central_dp.check_options(config)
    return config
