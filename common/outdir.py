"""Atomic output directories: write into a temporary sibling, swap it into place at the end.

Every writing command goes through here, so three promises hold for all of them:

* **inputs are never touched**: the output may not be, lie inside or contain anything the command
  reads (:mod:`common.pathguard`), checked before anything is read or written;
* **``--overwrite`` only replaces crypten-fl's own output**: a directory is replaced only if it
  carries the marker file :data:`MARKER` that this module writes into every output, and holds
  nothing that crypten-fl did not write there (an arbitrary folder is never emptied);
* **no half-written output, even when overwriting**: the new output is complete before the old one
  goes. On Linux the two directories are exchanged in one ``renameat2(RENAME_EXCHANGE)`` call, so
  at every instant ``out`` is either the complete old or the complete new output; a SIGKILL at any
  point leaves one of them in place (and at most a hidden temporary sibling, removed by the next
  command that writes the same output).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crypten_fl.common import __version__
from crypten_fl.common.errors import UserError
from crypten_fl.common.pathguard import Reads, check_disjoint

#: the file that marks a directory as written by crypten-fl (JSON: command, version, entries)
MARKER = ".crypten-fl-output"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _temp_prefix(out: Path) -> str:
    return f".{out.name}.tmp-{socket.gethostname()}-{os.getpid()}-"


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker of a crypten-fl output directory (None: not one, or unreadable)."""
    try:
        marker = json.loads((Path(directory) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("tool") == "crypten-fl" else None


def write_marker(directory: Path, command: str, entries: list[str] | None = None) -> None:
    """Mark ``directory`` as crypten-fl's output of ``command``. ``entries``: its top-level names
    (None: a working directory the command keeps adding to, such as a node's)."""
    record = {"tool": "crypten-fl", "version": __version__, "command": command,
              "entries": entries}
    path = Path(directory) / MARKER
    path.write_text(json.dumps(record, indent=2) + "\n")
    path.chmod(0o644)  # whatever the umask: readable, writable by its owner only


def _foreign_entries(directory: Path, marker: dict[str, Any]) -> list[str]:
    """Top-level entries of ``directory`` that crypten-fl did not write there."""
    known = marker.get("entries")
    if known is None:
        return []
    return sorted(p.name for p in directory.iterdir()
                  if p.name != MARKER and p.name not in known
                  and not (p.is_dir() and not p.is_symlink() and read_marker(p) is not None))


def check_replaceable(out: Path, option: str = "--out", command: str | None = None) -> None:
    """Raise UserError unless the existing directory ``out`` may be replaced by ``--overwrite``:
    an earlier output of ``command`` (any crypten-fl command if None) holding nothing else."""
    marker = read_marker(out)
    if marker is None:
        raise UserError(f"{option} {out}: not a directory written by crypten-fl (no {MARKER} "
                        "marker), and crypten-fl replaces only its own outputs; remove it "
                        f"yourself or choose another {option}")
    if command is not None and marker.get("command") != command:
        raise UserError(f"{option} {out}: written by `crypten-fl {marker.get('command')}`, and "
                        f"`crypten-fl {command}` replaces only its own earlier output; choose "
                        f"another {option}")
    foreign = _foreign_entries(out, marker)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise UserError(f"{option} {out}: holds files crypten-fl did not write ({shown}), so "
                        "it will not be replaced; move them out first")


def check_output_dir(out: Path, overwrite: bool, option: str = "--out",
                     reads: Reads | None = None, command: str | None = None) -> None:
    """Raise UserError unless ``out`` may be written: disjoint from ``reads``; absent, empty, or
    (with ``overwrite``) an earlier crypten-fl output; its parent exists and is writable."""
    out = Path(out)
    check_disjoint(out, option, reads or {})
    if out.is_symlink() and not out.exists():
        raise UserError(f"{option} {out}: is a dangling symbolic link")
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{option} {out}: directory exists and is not empty (use --overwrite)")
        check_replaceable(out, option, command)
    parent = out.resolve().parent
    if not parent.exists():
        raise UserError(f"{option} {out}: parent directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{option} {out}: parent directory {parent} is not writable")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False where that is not supported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_dir(new: Path, out: Path) -> None:
    """Put the complete directory ``new`` at ``out``, replacing what is there atomically."""
    new, out = Path(new), Path(out)
    if out.is_symlink():  # replace the directory the link points to, keep the user's link
        out = out.resolve()
    if not out.exists():
        os.replace(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # now holds the old output
        return
    trash = Path(tempfile.mkdtemp(prefix=_temp_prefix(out), dir=out.parent))
    os.replace(out, trash / out.name)  # fallback: two renames (a short window without ``out``)
    os.replace(new, out)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_temps(out: Path) -> None:
    """Remove temporary siblings of ``out`` left by killed crypten-fl processes of this host."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.tmp-{re.escape(socket.gethostname())}"
                         r"-(\d+)-\w+")
    for sibling in out.parent.iterdir():
        match = pattern.fullmatch(sibling.name)
        if match and not process_alive(int(match.group(1))):
            shutil.rmtree(sibling, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (also if it is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_temp_dir(out: Path) -> Path:
    """A new temporary sibling of ``out`` with ordinary permissions (mkdtemp makes 0700)."""
    out = Path(out)
    if out.is_symlink():
        out = out.resolve()
    parent = out.resolve().parent
    with contextlib.suppress(OSError):
        _remove_stale_temps(parent / out.name)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(out), dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def finish_output(tmp: Path, out: Path, command: str) -> None:
    """Mark the complete output ``tmp`` as ``command``'s and swap it into place at ``out``."""
    write_marker(tmp, command, sorted(p.name for p in Path(tmp).iterdir() if p.name != MARKER))
    replace_dir(tmp, out)


@contextlib.contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False, option: str = "--out", *,
                      reads: Reads | None = None, command: str) -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; on success swap it into place at ``out``.

    Checks first (:func:`check_output_dir`) that ``out`` is disjoint from ``reads`` and may be
    (over)written. On any exception the temporary directory is removed and ``out`` is left as it
    was. With ``overwrite`` an existing ``out`` is replaced only after the new output is complete.
    """
    out = Path(out)
    check_output_dir(out, overwrite, option, reads, command)
    tmp = new_temp_dir(out)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finish_output(tmp, out, command)
