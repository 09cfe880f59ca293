"""Run test jobs in real party processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crypten_fl.fedtrain.launch import launch

HELPERS = Path(__file__).resolve().parent


def run_job(name: str, specs: list[dict[str, Any]], workdir: Path,
            env: dict[str, str] | None = None, **kwargs: Any) -> list[dict]:
    """Launch ``helpers.party_jobs:<name>`` in ``len(specs)`` processes."""
    pythonpath = os.pathsep.join([str(HELPERS.parent), os.environ.get("PYTHONPATH", "")])
    return launch(f"helpers.party_jobs:{name}", specs, workdir,
                  env={"PYTHONPATH": pythonpath, **(env or {})}, **kwargs)
