"""Federated strategies, one module each, behind the interface in base.py.

``get(name)`` returns the strategy class; modules register themselves with ``@register``.
"""

from __future__ import annotations

import importlib

from fedtrain.strategies.base import REGISTRY, Strategy

_MODULES = {
    "horizontal": "fedtrain.strategies.horizontal",
    "local": "fedtrain.strategies.local",
    "centralized": "fedtrain.strategies.centralized",
    "fedper": "fedtrain.strategies.fedper",
    "fedmtl": "fedtrain.strategies.fedmtl",
    "split": "fedtrain.strategies.split",
    "vertical": "fedtrain.strategies.vertical",
}


def get(name: str) -> type[Strategy]:
    """The strategy class registered under ``name``."""
    importlib.import_module(_MODULES[name])
    return REGISTRY[name]


def available() -> list[str]:
    """Names of all strategies."""
    return list(_MODULES)
