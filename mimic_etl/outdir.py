"""Atomic output directories: write into a temporary sibling, rename into place at the end.

A failed or interrupted command therefore leaves no half-written output, and the user's
inputs are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mimic_etl.errors import UserError


def check_output_dir(out: Path, overwrite: bool, option: str = "--out") -> None:
    """Raise UserError if ``out`` is a file, or a non-empty directory and not ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{option} {out}: directory exists and is not empty (use --overwrite)")
    parent = out.resolve().parent
    if not parent.exists():
        raise UserError(f"{option} {out}: parent directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{option} {out}: parent directory {parent} is not writable")


@contextlib.contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; on success move it to ``out``.

    On any exception the temporary directory is removed and ``out`` is left as it was.
    With ``overwrite`` an existing ``out`` is replaced only after the new output is complete.
    """
    out = Path(out)
    check_output_dir(out, overwrite, option)
    parent = out.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the output gets ordinary permissions
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
        os.replace(out, trash / out.name)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)
