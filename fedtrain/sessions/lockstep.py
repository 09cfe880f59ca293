"""Lock-step batching for strategies in which every party takes part in every encrypted step.

All parties must call the same encrypted operations in the same order, so each step every
hospital contributes a block (possibly empty) of publicly known size. Batch sizes are
proportional to the hospitals' training-set sizes, so every hospital makes one pass over its
data per epoch in the same number of steps. (This reveals each hospital's training-set size.)
"""

from __future__ import annotations

import math

import torch
from crypten_fl.fedtrain.compat import crypten


def all_sizes(n: int) -> list[int]:
    """Every party's ``n`` (a public all-gather of one integer each)."""
    gathered = crypten.communicator.get().all_gather(torch.tensor([n], dtype=torch.int64))
    return [int(t.item()) for t in gathered]


def plan(sizes: list[int], batch_size: int) -> tuple[int, list[int]]:
    """(steps per epoch, per-party batch size) so that every party finishes in ``steps``."""
    steps = max(math.ceil(n / batch_size) for n in sizes) if any(sizes) else 0
    return steps, [math.ceil(n / steps) if steps else 0 for n in sizes]


def block_sizes(sizes: list[int], batches: list[int], step: int) -> list[int]:
    """Rows each party contributes at ``step`` (0 once a party has used all its rows)."""
    return [max(0, min(b, n - step * b)) for n, b in zip(sizes, batches, strict=True)]
