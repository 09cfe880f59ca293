"""The machine a benchmark ran on (printed with every figure)."""

from __future__ import annotations

import os
import platform

import psutil
import torch


def describe() -> dict[str, object]:
    """Platform, CPU count, RAM, Python and torch versions."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
