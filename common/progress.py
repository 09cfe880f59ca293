"""Progress reporting without printing: library code calls a callback, the CLI renders it."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    """Called as ``progress(task, done, total)``; ``total=None`` means unknown length.

    The same ``task`` string identifies one bar; calling with ``done == total`` finishes it.
    """

    def __call__(self, task: str, done: float, total: float | None = None) -> None: ...


def no_progress(task: str, done: float, total: float | None = None) -> None:
    """A progress callback that does nothing (the default for library calls)."""
