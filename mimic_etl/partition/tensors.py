"""Per-stay tensors: the cohort's long (stay, bin) grid reshaped into (N, T, F) arrays, and back
into the `values` / `mask` Array columns of the FED/ split files.

Everything is vectorised numpy: the grid is sorted by (stay_id, bin) and complete, so one reshape
turns it into per-stay matrices without any per-row Python work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from crypten_fl.common.errors import UserError

VALUES_COLUMN = "values"
MASK_COLUMN = "mask"


def grid_to_arrays(
    grid: pl.DataFrame, stay_ids: np.ndarray, features: list[str], n_bins: int, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Reshape the long grid into values (N, T, F) float32 (NULL -> NaN) and mask (N, T, F) uint8.

    Args:
        grid: columns stay_id, bin, then per feature ``f`` and ``f_mask``.
        stay_ids: (N,) the sorted stay ids the grid must cover, each with bins 0..n_bins-1.
        features: feature names in output order.
        n_bins: bins per stay (T).
        path: the grid's file, named in errors.
    """
    n, t = len(stay_ids), n_bins
    if grid.height != n * t:
        raise UserError(
            f"{path}: {grid.height} rows, expected stays × n_bins = {n} × {t} = {n * t} "
            "(a complete grid)"
        )
    sid = grid["stay_id"].to_numpy()
    bins = grid["bin"].to_numpy()
    expected_sid, expected_bins = np.repeat(stay_ids, t), np.tile(np.arange(t), n)
    order: np.ndarray | None = None
    if not (np.array_equal(sid, expected_sid) and np.array_equal(bins, expected_bins)):
        order = np.lexsort((bins, sid))  # tolerate an unsorted file: sort once, check again
        sid, bins = sid[order], bins[order]
    if not (np.array_equal(sid, expected_sid) and np.array_equal(bins, expected_bins)):
        raise UserError(
            f"{path}: (stay_id, bin) rows do not form the complete grid of static.parquet's "
            f"stays × bins 0..{t - 1}"
        )
    mask_names = [f"{f}_mask" for f in features]
    if any(grid.select(pl.col(mask_names).null_count()).row(0)):
        raise UserError(f"{path}: mask columns must not hold NULL")
    with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: reported below
        values = grid.select(features).to_numpy().astype(np.float32, copy=False)
    mask = grid.select(mask_names).to_numpy()
    if mask.size and (mask.min() < 0 or mask.max() > 1):
        raise UserError(f"{path}: mask columns must hold only 0/1")
    mask = mask.astype(np.uint8, copy=False)
    _check_observed_finite(values, mask, features, path)
    if order is not None:
        values, mask = values[order], mask[order]
    shape = (n, t, len(features))
    return np.ascontiguousarray(values).reshape(shape), np.ascontiguousarray(mask).reshape(shape)


def _check_observed_finite(
    values: np.ndarray, mask: np.ndarray, features: list[str], path: Path
) -> None:
    """An observed cell (mask 1) must hold a finite float32; NULL/NaN only where the mask is 0."""
    bad = (mask == 1) & ~np.isfinite(values)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise UserError(
            f"{path}: column {features[j]} has {int(bad[:, j].sum())} NULL, NaN, infinite or "
            f"beyond-float32 value(s) in rows where {features[j]}_mask is 1"
        )


def tensor_columns(values: np.ndarray, mask: np.ndarray) -> list[pl.Series]:
    """The `values` Array(Float32, (T, F)) and `mask` Array(UInt8, (T, F)) columns (NaN kept)."""
    return [
        pl.Series(VALUES_COLUMN, np.ascontiguousarray(values, dtype=np.float32)),
        pl.Series(MASK_COLUMN, np.ascontiguousarray(mask, dtype=np.uint8)),
    ]


def column_to_array(
    column: pl.Series, dtype: type[np.generic], shape: tuple[int, int], path: Path
) -> np.ndarray:
    """An Array column of a split file back to an (N, T, F) numpy array, checking its type."""
    expected = pl.Array(pl.Float32 if dtype is np.float32 else pl.UInt8, shape)
    if column.dtype != expected:
        raise UserError(f"{path}: column {column.name} is {column.dtype}, expected {expected}")
    if column.null_count():
        raise UserError(f"{path}: column {column.name} has NULL rows")
    array = column.to_numpy()
    return np.asarray(array, dtype=dtype).reshape((len(column), *shape))
