"""Fixed-point encoding into CrypTen's ring Z_2^64 (int64 with wrap-around).

Decoding is done in float64 and is exact for negative values (CrypTen 0.4.1's own decoder is not;
see fedtrain/compat.py). Encoding rounds to the nearest multiple of 2^-precision_bits.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_PRECISION_BITS = 16
_LIMIT = 2.0**62


def encode(x: torch.Tensor, precision_bits: int = DEFAULT_PRECISION_BITS) -> torch.Tensor:
    """Encode a float tensor as int64 fixed point: round(x · 2^precision_bits).

    Implemented on numpy views: 10–20× faster than the same element-wise torch ops on this CPU.
    """
    scaled = x.detach().cpu().numpy().astype(np.float64)
    scaled *= float(2**precision_bits)
    if scaled.size and not np.isfinite(scaled).all():
        raise ValueError("cannot encode non-finite values")
    if scaled.size and np.abs(scaled).max() >= _LIMIT:
        raise ValueError("value too large for the fixed-point ring")
    np.rint(scaled, out=scaled)
    return torch.from_numpy(scaled.astype(np.int64))


def decode(t: torch.Tensor, precision_bits: int = DEFAULT_PRECISION_BITS) -> torch.Tensor:
    """Decode int64 fixed point to float64: floor(t / s) + (t mod s) / s, exact for negatives.

    With s = 2^bits, floor division is an arithmetic right shift and the remainder a bit mask.
    """
    v = t.detach().cpu().numpy()
    out = (v >> precision_bits).astype(np.float64)
    out += (v & (2**precision_bits - 1)) * (1.0 / 2**precision_bits)
    return torch.from_numpy(out)
