"""Fixed-point encoding into CrypTen's ring Z_2^64 (int64 with wrap-around).

Decoding is done in float64 and is exact for negative values (CrypTen 0.4.1's own decoder is not;
see fedtrain/compat.py). Encoding rounds to the nearest multiple of 2^-precision_bits.
"""

from __future__ import annotations

import torch

DEFAULT_PRECISION_BITS = 16


def encode(x: torch.Tensor, precision_bits: int = DEFAULT_PRECISION_BITS) -> torch.Tensor:
    """Encode a float tensor as int64 fixed point: round(x · 2^precision_bits)."""
    scaled = x.detach().to(torch.float64) * float(2**precision_bits)
    if not torch.isfinite(scaled).all():
        raise ValueError("cannot encode non-finite values")
    if scaled.abs().max().item() >= 2.0**62 if scaled.numel() else False:
        raise ValueError("value too large for the fixed-point ring")
    return torch.round(scaled).to(torch.int64)


def decode(t: torch.Tensor, precision_bits: int = DEFAULT_PRECISION_BITS) -> torch.Tensor:
    """Decode int64 fixed point to float64: floor(t / s) + (t mod s) / s, exact for negatives."""
    scale = 2**precision_bits
    quotient = torch.div(t, scale, rounding_mode="floor")
    remainder = t - quotient * scale
    return quotient.to(torch.float64) + remainder.to(torch.float64) / scale
