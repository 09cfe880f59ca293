"""A hospital's named tensors as one vector, and their secure weighted mean across hospitals."""

from __future__ import annotations

from typing import Any

import torch


def flatten(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (in sorted key order) into one float64 vector."""
    return torch.cat([tensors[k].detach().reshape(-1).to(torch.float64) for k in sorted(tensors)])


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten`, restoring shapes and dtypes of ``like``."""
    out, offset = {}, 0
    for key in sorted(like):
        n = like[key].numel()
        out[key] = flat[offset : offset + n].reshape(like[key].shape).to(like[key].dtype)
        offset += n
    return out


def secure_mean(aggregator: Any, tensors: dict[str, torch.Tensor], weight: float, what: str
                ) -> dict[str, torch.Tensor]:
    """Weighted mean of ``tensors`` over hospitals via one secure sum (weights revealed only
    as their total); ``what`` names it for the reveal audit."""
    mean, _ = aggregator.weighted_mean(flatten(tensors), weight, what=what)
    return unflatten(mean, tensors)
