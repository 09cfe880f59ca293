"""Shared CLI plumbing: consoles, error handling, progress bars, tables."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from crypten_fl.common.errors import UserError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def end_live_display() -> None:
    """End the line a live display leaves open when the output is not a terminal (a log, a pipe),
    so that whatever comes next (a table title, an error) starts on its own line."""
    if not console.is_terminal:
        console.file.write("\n")
        console.file.flush()


def run_or_exit(fn: Callable[[], T], interrupted: Callable[[], str] | None = None) -> T:
    """Run a library call; a UserError becomes one red line on stderr and exit code 1. On Ctrl-C,
    ``interrupted()`` says what is left (default: nothing was written)."""
    try:
        return fn()
    except UserError as err:
        # escaped: messages quote paths and library errors such as "[.../pair.cc:152]"
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        left = interrupted() if interrupted is not None else "no output was written"
        err_console.print(f"[bold red]interrupted[/]: {escape(left)}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(130) from None


class RichProgress:
    """Adapts the library's ``progress(task, done, total)`` callback to rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, task: str, done: float, total: float | None = None) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._progress.add_task(task, total=total)
        self._progress.update(self._tasks[task], completed=done, total=total)


@contextlib.contextmanager
def progress_bars() -> Iterator[RichProgress]:
    """A rich progress display (on stderr, so stdout stays clean) yielding a ProgressFn."""
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        yield RichProgress(progress)


def make_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
               caption: str | None = None) -> Table:
    """A rich table; numbers right-aligned, floats with 3 decimals."""
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    first = rows[0] if rows else [None] * len(columns)
    for name, sample in zip(columns, first, strict=False):
        numeric = isinstance(sample, int | float) and not isinstance(sample, bool)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else escape(str(value))  # cells may hold paths with [..]


def point_to_json(path: Path) -> None:
    """Say where the machine-readable version of the tables above is (instead of dumping it)."""
    console.print(f"[dim]machine-readable: {escape(str(path))}[/]", highlight=False, soft_wrap=True)


def is_interactive() -> bool:
    """True when stderr is a terminal (progress bars are still shown otherwise, without redraws)."""
    return sys.stderr.isatty()
