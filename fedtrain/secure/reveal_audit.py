"""Reveal audit: every plaintext a party obtains from CrypTen is tagged with what it is.

Each place that reveals a secret-shared value wraps the call in ``revealing("<what>")``. With
``CRYPTEN_FL_AUDIT=<dir>`` set, every reveal (all-party or to one party) is appended to
``<dir>/reveals_<rank>.jsonl`` as ``{"tag", "dst", "elements"}``; a reveal outside any
``revealing`` block is logged with tag ``"UNTAGGED"``. Tests run each strategy with auditing on
and assert that a party obtains only the kinds of plaintext docs/strategies.md lists for it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.secure import tags

_current: list[str] = []


@contextlib.contextmanager
def revealing(tag: str) -> Iterator[None]:
    """Label the reveals made inside this block."""
    _current.append(tag)
    try:
        yield
    finally:
        _current.pop()


def record(dst: int | None, elements: int) -> None:
    """Log one reveal of ``elements`` values to ``dst`` (None = every party), if auditing."""
    _log(dst, elements)


def _log(dst: int | None, elements: int) -> None:
    directory = os.environ.get("CRYPTEN_FL_AUDIT")
    if not directory:
        return
    path = os.path.join(directory, f"reveals_{os.environ.get('RANK', '0')}.jsonl")
    record = {"tag": _current[-1] if _current else "UNTAGGED", "dst": dst, "elements": elements}
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _audited_reveal(original: Any) -> Any:
    def reveal(self: Any, dst: int | None = None) -> Any:
        _log(dst, int(self.share.numel()))
        return original(self, dst=dst)

    reveal._audited = True  # type: ignore[attr-defined]
    return reveal


def _masked(protocol: Any) -> Any:
    """``protocol`` with the openings it makes tagged as masked openings."""
    def run(*args: Any, **kwargs: Any) -> Any:
        with revealing(tags.MASKED_OPENINGS):
            return protocol(*args, **kwargs)

    return run


def install() -> None:
    """Wrap CrypTen's arithmetic and binary reveals (idempotent), and tag the openings its
    square and bit-conversion protocols make (each opens a value plus a fresh uniformly random
    mask from the dealer: uniformly random to every party). Called by every party process."""
    primitives = crypten.mpc.primitives
    if getattr(primitives.ArithmeticSharedTensor.reveal, "_audited", False):
        return
    for cls in (primitives.ArithmeticSharedTensor, primitives.BinarySharedTensor):
        cls.reveal = _audited_reveal(cls.reveal)
    beaver = primitives.beaver
    beaver.square, beaver.B2A_single_bit = _masked(beaver.square), _masked(beaver.B2A_single_bit)
