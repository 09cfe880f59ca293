"""Run the SQL of sql/ in an order derived from the files' own references.

mimic-code keeps its build order by hand in two places and users hit "relation ... does not
exist" when they drift; here a file's dependencies are the relation names that follow FROM or
JOIN in its code (comments and string literals ignored), and the order is a topological sort.
"""

from __future__ import annotations

import graphlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
from crypten_fl import sql
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.mimic_etl.extract.duck import polling_progress

_REFERENCE = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", re.IGNORECASE)

StepKind = Literal["setup", "table", "view", "export"]


@dataclass(frozen=True)
class Step:
    """One statement to run: setup DDL, a table or view to create, or a relation exported to
    parquet."""

    name: str
    kind: StepKind
    statement: str
    depends_on: frozenset[str]
    reads: frozenset[str]


def references(text: str, known: set[str]) -> set[str]:
    """Names in ``known`` that follow FROM/JOIN in ``text``, outside comments and strings."""
    return {m.group(1) for m in _REFERENCE.finditer(sql.code_only(text))} & known


def plan(
    files: Sequence[sql.SqlFile],
    input_tables: set[str],
    exports: Mapping[str, Path],
    values: Mapping[str, str],
    views: frozenset[str] = frozenset(),
) -> list[Step]:
    """Order ``files`` so each runs after what it references; ``exports`` become COPY TO parquet.

    Args:
        files: the sql/ files (setup files run first, in name order).
        input_tables: names of the MIMIC views a file may read.
        exports: relation name -> parquet path; these must be leaves (nothing may read them).
        values: placeholder values for :func:`sql.render`.
        views: relations created as views (evaluated by each query that reads them, nothing
            stored); the others become tables of the scratch database.
    """
    relations = {f.name: f for f in files if not f.is_setup}
    clash = relations.keys() & input_tables
    if clash:
        raise ValueError(f"sql/ relation names clash with MIMIC tables: {sorted(clash)}")
    bodies = {name: sql.render(f.text, values) for name, f in relations.items()}
    deps = {  # after rendering: generated column lists may read relations too
        name: references(body, set(relations) | input_tables) - {name}
        for name, body in bodies.items()
    }
    for name in exports:
        readers = sorted(n for n, d in deps.items() if name in d)
        if name not in relations or readers:
            raise ValueError(f"export {name!r} must be a leaf relation of sql/ (read by {readers})")
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(relations):
        sorter.add(name, *sorted(deps[name] - input_tables))
    order = list(sorter.static_order())  # raises graphlib.CycleError on a cycle

    steps = [
        Step(f.name, "setup", f.text, frozenset(), frozenset()) for f in files if f.is_setup
    ]
    for name in order:
        body = bodies[name]
        if name in exports:
            kind: StepKind = "export"
            target = sql.literal(str(exports[name]))
            statement = f"COPY (\n{body}\n) TO {target} (FORMAT parquet, COMPRESSION zstd)"
        elif name in views:
            kind = "view"
            statement = f"CREATE OR REPLACE VIEW {name} AS\n{body}"
        else:
            kind = "table"
            statement = f"CREATE OR REPLACE TABLE {name} AS\n{body}"
        reads = frozenset(deps[name] & input_tables)
        steps.append(Step(name, kind, statement, frozenset(deps[name] - input_tables), reads))
    return steps


def run(
    con: duckdb.DuckDBPyConnection,
    steps: Sequence[Step],
    on_error: Callable[[duckdb.Error, Step], Exception],
    progress: ProgressFn = no_progress,
    prepare: Callable[[duckdb.DuckDBPyConnection], None] = lambda cursor: None,
    workers: int = 2,
) -> dict[str, float]:
    """Execute ``steps``: setup first, then each step as soon as its dependencies are done.

    Up to ``workers`` steps run at once, each on its own cursor of ``con`` (made ready with
    ``prepare``: session variables are per connection). A gzip file is decompressed
    by one thread, so scanning chartevents while labevents is scanned uses a second core.
    Progress is reported per step as ``progress("sql <name>", percent, 100)`` from DuckDB's query
    progress. A DuckDB error is passed to ``on_error``, the other running steps are interrupted,
    and the exception ``on_error`` returns is raised. Returns seconds per step.
    """
    seconds: dict[str, float] = {}
    for step in steps:
        if step.kind == "setup":
            seconds[step.name] = _execute(con, step, on_error, progress)
    pending = [s for s in steps if s.kind != "setup"]
    cursors: dict[int, duckdb.DuckDBPyConnection] = {}
    lock = threading.Lock()

    def work(step: Step) -> float:
        with lock:
            cursor = cursors.get(threading.get_ident())
            if cursor is None:
                cursor = cursors[threading.get_ident()] = con.cursor()
                prepare(cursor)
        return _execute(cursor, step, on_error, progress)

    running: dict[Future[float], Step] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sql")
    try:
        while pending or running:
            for step in [s for s in pending if s.depends_on <= seconds.keys()]:
                pending.remove(step)
                running[pool.submit(work, step)] = step
            if not running:
                raise RuntimeError(f"unsatisfiable dependencies: {[s.name for s in pending]}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                seconds[running.pop(future).name] = future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            for cursor in cursors.values():
                cursor.interrupt()
        raise
    finally:
        pool.shutdown(wait=True)
        for cursor in cursors.values():
            cursor.close()
    return seconds


def _execute(
    con: duckdb.DuckDBPyConnection,
    step: Step,
    on_error: Callable[[duckdb.Error, Step], Exception],
    progress: ProgressFn,
) -> float:
    task = f"sql {step.name}"
    progress(task, 0, 100)
    start = time.perf_counter()
    try:
        with polling_progress(con, lambda pct: progress(task, pct, 100)):
            con.execute(step.statement)
    except duckdb.Error as err:
        raise on_error(err, step) from err
    progress(task, 100, 100)
    return round(time.perf_counter() - start, 3)
