"""Outputs never overlap inputs: the check every writing command makes before it starts.

Paths are compared by the file system's own identity of each directory (device and inode of the
resolved path and of each of its existing ancestors), not by their spelling. Symlinks are
followed, ``..`` and relative paths do not matter, and on a case-insensitive file system
``Victim/icu`` and ``victim/icu`` are the same place because they are the same inode.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from crypten_fl.common.errors import UserError

#: what a command reads: option name (as the user typed it, e.g. ``--mimic-dir``) -> paths
Reads = Mapping[str, Iterable[Path]]
_Identity = tuple[int, int]


def _identity(path: Path) -> _Identity | None:
    try:
        st = os.stat(path)  # follows symlinks
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _chain(path: Path) -> list[_Identity]:
    """Identities of ``path`` (if it exists) and of every existing directory above it."""
    resolved = Path(path).absolute().resolve()  # symlinks first, then '..' (as the kernel)
    found = (_identity(p) for p in (resolved, *resolved.parents))
    return [i for i in found if i is not None]


def overlap(out: Path, read: Path) -> str | None:
    """How ``out`` overlaps ``read``: ``"is"``, ``"lies inside"``, ``"contains"`` or None."""
    read_id = _identity(read)
    if read_id is None:  # nothing there to protect (the command reports it missing itself)
        return None
    out_id = _identity(out)
    if out_id is not None and out_id == read_id:
        return "is"
    if read_id in _chain(out):
        return "lies inside"
    if out_id is not None and out_id in _chain(read):
        return "contains"
    return None


def check_disjoint(out: Path, option: str, reads: Reads) -> None:
    """Raise UserError if ``out`` is, lies inside or contains anything the command reads."""
    for read_option, paths in reads.items():
        for read in paths:
            how = overlap(Path(out), Path(read))
            if how is not None:
                raise UserError(
                    f"{option} {out}: {how} {read_option} {read}, which this command reads "
                    f"(outputs never go into, onto or around inputs; choose another {option})")
