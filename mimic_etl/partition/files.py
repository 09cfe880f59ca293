"""Checked parquet reading shared by the cohort reader and the hospital-split reader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from crypten_fl.common.errors import UserError


def read_parquet(path: Path, columns: list[str] | None = None, hint: str = "") -> pl.DataFrame:
    """Read (some columns of) a parquet file; an unreadable file or a missing column is a
    one-line UserError naming the file (``hint`` is appended to the missing-column message)."""
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as err:  # polars raises several types for a corrupt file
        raise UserError(f"{path}: not a readable parquet file ({type(err).__name__})") from err
    missing = [c for c in columns or [] if c not in schema]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise UserError(f"{path}: missing column(s) {shown}{hint}")
    return pl.read_parquet(path, columns=columns, glob=False)  # paths may hold [ ] * ?


def require_dtypes(
    frame: pl.DataFrame,
    path: Path,
    *,
    numeric: Sequence[str] = (),
    integer: Sequence[str] = (),
    temporal: Sequence[str] = (),
    text: Sequence[str] = (),
) -> None:
    """Raise UserError naming the first column of ``frame`` whose type is not the required kind.

    A column of only NULLs (type Null) passes as ``text``.
    """
    checks = [
        (numeric, "numeric", lambda d: d.is_numeric() or d == pl.Boolean),
        (integer, "an integer", lambda d: d.is_integer()),
        (temporal, "a timestamp", lambda d: d.is_temporal()),
        (text, "text", lambda d: d in (pl.String, pl.Categorical, pl.Null)),
    ]
    for columns, kind, ok in checks:
        for col in columns:
            if not ok(frame.schema[col]):
                raise UserError(f"{path}: column {col} is {frame.schema[col]}, expected {kind}")
