"""Party processes forked from a warm template instead of started from an empty interpreter.

A party started as ``python -m crypten_fl.fedtrain.party`` spends ≈ 2–4 s of CPU importing torch,
CrypTen and Opacus before it does anything; a launch of four hospitals and a dealer pays that
five times over. The local launcher therefore forks its parties from a template process (the
standard library's ``forkserver``) that has done those imports and nothing else: it is started
from a clean interpreter, never sees a spec, a kit or a row of data, and each party forked from
it is still a separate OS process with its own address space, environment, working directory
and log, running :func:`crypten_fl.fedtrain.party.main` exactly as the command line would.

:class:`PartyProcess` offers the part of ``subprocess.Popen`` the launcher uses (``pid``,
``poll``, ``wait``, ``send_signal``, ``kill``, ``returncode``), with the same exit codes:
the party's own, or minus the signal that killed it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

#: Imported once by the template, inherited by every party forked from it. Only modules whose
#: import reads no setting of ours (the crypten_fl modules that read the environment at import,
#: e.g. fedtrain.secure.group, are imported by each party after its environment is set).
PRELOAD = ["crypten_fl.fedtrain.compat", "opacus", "polars", "pyarrow.parquet"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


class PartyProcess:
    """One party process, forked from the template; a ``subprocess.Popen`` look-alike."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self._process = _context.Process(target=_run_party, args=(argv, env, str(log), os.getcwd()),
                                         daemon=False)
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        """The exit code, or None while the party runs."""
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the party to end; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(f"party process {self.pid}", timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never signal a pid that may have been reused
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _run_party(argv: list[str], env: dict[str, str], log: str, cwd: str) -> None:
    """The forked party: its own environment, directory and log, then the party's main."""
    _let_the_template_end_with_the_launcher()
    os.environ.clear()
    os.environ.update(env)
    # as a fresh interpreter would: the environment's PYTHONPATH ahead of the inherited path
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[:0] = extra
    # the parent of this process is the template, which exits when the launcher does; the
    # party asks to be killed when its parent dies (fedtrain.party._die_with_launcher)
    os.environ["CRYPTEN_FL_LAUNCHER_PID"] = str(os.getppid())
    os.chdir(cwd)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)
    from crypten_fl.fedtrain import party

    code = party.main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as ``python -m``: skip the teardown where gloo's threads may abort


def _let_the_template_end_with_the_launcher() -> None:
    """Close this process's copy of the template's "alive" pipe.

    The template exits when every holder of the pipe's write end has closed it, and the standard
    library gives one to each process it forks (so that they could use the template too). A
    party holding it would keep the template alive after the launcher died, and with it the
    party itself, whose death signal is tied to the template's exit. Parties start no processes
    of their own, so they drop it (multiprocessing/forkserver.py, Python 3.11: ``_serve_one``).
    """
    from multiprocessing import forkserver

    server = forkserver._forkserver  # the module's one instance
    if server._forkserver_alive_fd is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
