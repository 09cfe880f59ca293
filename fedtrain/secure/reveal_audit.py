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


def install() -> None:
    """Wrap CrypTen's arithmetic reveal (idempotent). Called by every party process."""
    cls = crypten.mpc.primitives.ArithmeticSharedTensor
    if getattr(cls.reveal, "_audited", False):
        return
    original = cls.reveal

    def reveal(self: Any, dst: int | None = None) -> Any:
        _log(dst, int(self.share.numel()))
        return original(self, dst=dst)

    reveal._audited = True  # type: ignore[attr-defined]
    cls.reveal = reveal
