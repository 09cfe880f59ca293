"""Fixed-point encoding into CrypTen's ring Z_2^64 (int64 with wrap-around).

Decoding is done in float64 and is exact for negative values (CrypTen 0.4.1's own decoder is not;
see fedtrain/compat.py). Encoding rounds to the nearest multiple of 2^-precision_bits.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_PRECISION_BITS = 16
_LIMIT = 2.0**62


def encode(x: torch.Tensor, precision_bits: int = DEFAULT_PRECISION_BITS,
           out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> torch.Tensor:
    """Encode a float tensor as int64 fixed point: round(x · 2^precision_bits).

    Implemented on numpy views (10–20× faster than the same element-wise torch ops on this CPU);
    ``out`` (int64) and ``scratch`` (float64) are optional reusable buffers of x's size.
    """
    values = x.detach().cpu().reshape(-1).numpy()
    scaled = scratch if scratch is not None else np.empty(values.size, dtype=np.float64)
    np.multiply(values, float(2**precision_bits), out=scaled)
    if scaled.size and not np.isfinite(scaled).all():
        raise ValueError("cannot encode non-finite values")
    if scaled.size and np.abs(scaled).max() >= _LIMIT:
        raise ValueError("value too large for the fixed-point ring")
    np.rint(scaled, out=scaled)
    result = out if out is not None else np.empty(values.size, dtype=np.int64)
    result[...] = scaled
    return torch.from_numpy(result).reshape(x.shape)


def decode(t: torch.Tensor, precision_bits: int = DEFAULT_PRECISION_BITS) -> torch.Tensor:
    """Decode int64 fixed point to float64: floor(t / s) + (t mod s) / s, exact for negatives.

    With s = 2^bits, floor division is an arithmetic right shift and the remainder a bit mask.
    """
    v = t.detach().cpu().numpy()
    if not v.size or (v.min() > -(2**53) and v.max() < 2**53):  # exact in float64: one step
        return torch.from_numpy(v * (1.0 / 2**precision_bits))
    out = (v >> precision_bits).astype(np.float64)
    out += (v & (2**precision_bits - 1)) * (1.0 / 2**precision_bits)
    return torch.from_numpy(out)
