"""numpy -> Arrow/polars column helpers shared by the table builders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


def timestamps(seconds: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Seconds since 1970 as a timestamp column (``null`` marks NULLs)."""
    return pa.array(np.asarray(seconds, dtype=np.int64).astype("datetime64[s]"), mask=null)


def dates(seconds: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Seconds since 1970 as a date column (``null`` marks NULLs)."""
    days = (np.asarray(seconds, dtype=np.int64) // 86400).astype("datetime64[D]")
    return pa.array(days, mask=null)


def numbers(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A numeric column; NaN (and ``null``) become NULL."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        null = nan if null is None else (null | nan)
    return pa.array(values, mask=null)


def rounded(values: np.ndarray, decimals: np.ndarray | int) -> np.ndarray:
    """Round each value to its own number of decimals."""
    scale = 10.0 ** np.asarray(decimals)
    return np.round(np.asarray(values) * scale) / scale


def number_strings(values: np.ndarray, decimals: np.ndarray | None = None) -> pa.Array:
    """Text of each number as MIMIC's ``value`` column shows it ('98', '1.2', '4.0').

    Whole numbers print without a decimal point unless ``decimals`` asks for one.
    """
    values = np.asarray(values, dtype=np.float64)
    text = pa.array(values).cast(pa.string())
    if decimals is None:
        return text
    pad = (np.asarray(decimals) > 0) & (values == np.round(values))
    return pc.if_else(pa.array(pad), pc.binary_join_element_wise(text, ".0", ""), text)


def choose_text(text_index: np.ndarray, texts: Sequence[str], fallback: pa.Array) -> pa.Array:
    """``texts[i]`` where ``text_index >= 0``, else the ``fallback`` string at that row."""
    idx = np.asarray(text_index)
    picked = pa.array(list(texts), pa.string()).take(pa.array(np.maximum(idx, 0)))
    return pc.if_else(pa.array(idx >= 0), picked, fallback)


def categories(index: np.ndarray, texts: Sequence[str | None]) -> pa.Array:
    """Dictionary-encoded strings ``texts[index]``; a None entry or index < 0 is NULL."""
    idx = np.asarray(index, dtype=np.int32)
    none = np.array([t is None for t in texts] + [True])
    null = none[np.where(idx < 0, len(texts), idx)]
    dictionary = pa.array([t if t is not None else "" for t in texts], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(np.maximum(idx, 0), mask=null), dictionary)


def frame(columns: dict[str, pa.Array | np.ndarray]) -> pl.DataFrame:
    """A polars frame from Arrow arrays or numpy arrays (column order kept)."""
    arrays = {k: v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)
              for k, v in columns.items()}
    return pl.from_arrow(pa.table(arrays))  # type: ignore[return-value]


def stable_order(*keys: np.ndarray) -> np.ndarray:
    """Row order sorting by the keys (first key most significant), ties kept in place."""
    return np.lexsort(tuple(reversed(keys)))


def owner_time_order(owner: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Stable row order by (owner index, time in seconds); faster than a two-key lexsort."""
    if len(time) == 0:
        return np.arange(0)
    key = owner.astype(np.int64) << 34 | (time - time.min()).astype(np.int64)
    return np.argsort(key, kind="stable")
