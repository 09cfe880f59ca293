"""The machine a benchmark ran on (printed with every figure)."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import psutil

PACKAGES = ("torch", "crypten", "opacus", "duckdb", "polars")


def describe() -> dict[str, object]:
    """Platform, CPU count, RAM, Python and the versions of the key packages (not imported)."""
    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }
    for name in PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    return info
