"""Run test jobs in real party processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
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


def party_processes(directory: Path | str) -> dict[int, str]:
    """pid → state (``ps`` letter) of the live processes whose standard output is a party log
    under ``directory``. Parties are forked from the launcher's template process, so their
    command line does not name them; their log does."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            stdout = os.readlink(proc / "fd" / "1")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if stdout.startswith(str(directory)) and stdout.endswith("party.log") and state != "Z":
            found[int(proc.name)] = state
    return found


@contextlib.contextmanager
def temp_for_killed_process() -> Iterator[Path]:
    """A TMPDIR for a process the test will SIGKILL (which cannot remove its temporary files,
    e.g. a launch's throw-away kits), removed afterwards. Short, under the system's temporary
    directory: the process's forkserver puts a Unix socket in it (at most 108 bytes of path)."""
    path = Path(tempfile.mkdtemp(prefix="cfl-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
