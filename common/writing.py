"""Failures to write an output (disk full, quota, a file system turned read-only) as UserErrors.

Library code writes into the temporary sibling of ``atomic_output_dir``; when the disk fills up
there, the user should read one line naming the output option, not a traceback from whichever
writer (pathlib, polars, matplotlib, gzip) happened to hit the limit.

    >>> with write_errors(Path("fed")):  # doctest: +SKIP
    ...     write_parquet(frame, tmp / "train.parquet")
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
from crypten_fl.common.errors import UserError


@contextlib.contextmanager
def write_errors(out: Path, option: str = "--out") -> Iterator[None]:
    """Turn an OSError raised in the block into ``UserError("<option> <out>: cannot write ...")``.

    Use it around the writing of outputs only (inputs are read and checked before), so that the
    error can rightly blame the output location.
    """
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err)
        raise UserError(f"{option} {out}: cannot write ({reason}); nothing was written") from err


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """``frame.write_parquet(path)``, with polars' I/O failures raised as OSError.

    polars reports a full disk as a ComputeError ("No space left on device", or only "Invalid
    thrift: transport error" when the footer cannot be written), so a full file system is also
    recognised by having no free blocks left.
    """
    try:
        frame.write_parquet(path)
    except pl.exceptions.ComputeError as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "No space left" in detail or os.statvfs(path.parent).f_bavail == 0:
            raise OSError(errno.ENOSPC, f"No space left on device (writing {path.name})") from err
        raise OSError(errno.EIO, f"{path.name}: {detail}") from err
