"""DuckDB session for `extract`: limits, spilling, live query progress, readable errors."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
from crypten_fl.common.errors import UserError

_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def check_memory_limit(text: str) -> str:
    """Validate a DuckDB memory limit such as ``8GB`` or ``512MiB``; UserError otherwise."""
    if not _MEMORY.match(text):
        raise UserError(f"--memory-limit {text!r}: expected a size such as 8GB, 3.5GB or 512MB")
    return text.strip()


def connect(
    database: Path, spill_dir: Path, threads: int | None, memory_limit: str
) -> duckdb.DuckDBPyConnection:
    """A file-backed connection (tables can be evicted to disk) that spills to ``spill_dir``.

    Args:
        database: scratch database file; intermediate tables live here, not in RAM.
        spill_dir: DuckDB ``temp_directory`` for operators larger than ``memory_limit``.
        threads: worker threads; None lets DuckDB use every core.
        memory_limit: DuckDB buffer-manager limit, e.g. ``"8GB"``.
    """
    spill_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "memory_limit": check_memory_limit(memory_limit),
        "temp_directory": str(spill_dir),
    }
    if threads is not None:
        config["threads"] = threads
    try:
        con = duckdb.connect(str(database), config=config)
    except duckdb.Error as err:
        message = f"--memory-limit / --threads: DuckDB rejected the settings ({err})"
        raise UserError(message) from err
    return con


def set_variables(con: duckdb.DuckDBPyConnection, values: Mapping[str, Any]) -> None:
    """Session setup: query progress on (not printed) and ``SET VARIABLE name = value`` for each
    entry (None becomes SQL NULL). Both are per connection: call it for every cursor.
    """
    con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
    for name, value in values.items():
        if value is None:
            con.execute(f"SET VARIABLE {name} = NULL")
        else:
            con.execute(f"SET VARIABLE {name} = ?", [value])


@contextlib.contextmanager
def polling_progress(
    con: duckdb.DuckDBPyConnection, report: Callable[[float], None], interval: float = 0.5
) -> Iterator[None]:
    """While the block runs a query on ``con``, call ``report(percent)`` every ``interval`` s."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval):
            percent = con.query_progress()
            if percent >= 0:
                report(min(percent, 99.0))

    thread = threading.Thread(target=poll, name="duckdb-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def as_user_error(
    err: duckdb.Error,
    step: str,
    inputs: Mapping[str, Path],
    memory_limit: str,
    out: Path | None = None,
) -> UserError:
    """Translate a DuckDB error raised in SQL step ``step`` into one line naming the culprit.

    Running out of memory names ``--memory-limit`` and a full disk names ``--out`` (``out``; the
    scratch database and spill files live in its temporary sibling), whatever file was being read.
    Otherwise ``inputs`` are the MIMIC files the step reads: a message naming one of them, or a step
    that reads a single file, is reported against that file.
    """
    text = str(err)
    first_paragraph = text.strip().split("\n\n", 1)[0]  # DuckDB appends generic advice after
    message = " ".join(line.strip() for line in first_paragraph.splitlines() if line.strip())
    message = message if len(message) <= 300 else message[:297] + "..."
    if isinstance(err, duckdb.OutOfMemoryException) or text.startswith("Out of Memory Error"):
        return UserError(
            f"--memory-limit {memory_limit}: DuckDB ran out of memory in step {step!r} "
            f"({message}); raise --memory-limit or free disk space for spilling"
        )
    if "No space left on device" in text:
        where = "--out" if out is None else f"--out {out}"
        return UserError(
            f"{where}: no space left on device in step {step!r} (DuckDB's scratch database and "
            "spill files are written next to the output)"
        )
    for path in inputs.values():
        if str(path) in text:
            return UserError(f"{path}: could not be read ({message})")
    if len(inputs) == 1:
        (path,) = inputs.values()
        return UserError(f"{path}: could not be read ({message})")
    return UserError(f"sql/{step}.sql: {message}")
