"""Hostile-input harness: run a CLI command on a damaged copy of a fixture and check invariants.

A :class:`Case` says how to damage the inputs (``mutate``: functions of the :class:`Workspace`),
the command line (``args``, with ``{name}`` placeholders for the workspace's paths) and what must
happen: ``error`` (substrings of the one error message) or ``check`` (asserts a correct result).
:func:`run_case` runs it and checks, whatever the case:

1. no traceback: no exception escapes the command, no "Traceback" and no ``SomeError:`` line in
   its output;
2. an error case exits non-zero with exactly one ``error:`` line (or click's usage box for an
   option of the wrong type) containing every needle, at least one of which names a file or an
   option; a success case exits 0 without an error line and passes its ``check``;
3. no partial output: an output that did not exist before a failure does not exist after it, one
   that existed is unchanged, and no hidden ``.<name>.*`` sibling (``.<name>.tmp-*`` and
   ``.<name>.old-*`` of ``common.outdir``, ``.<name>.partial`` of ``train``) is left behind;
4. inputs unchanged: every input file has the same sha256 and mtime, and none was added.

Commands run in-process through Typer's CliRunner (it goes through ``run_or_exit`` and exit codes
exactly as the console script does, at a fraction of the ~2-3 s start-up of a subprocess); a case
with ``subprocess=True`` runs ``python -m cli.app`` instead, proving the no-traceback property end
to end. A stage's catalogue is one list of cases in tests/test_fuzz_<stage>.py.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from crypten_fl.cli.app import app
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BOX = re.compile(r"[│╭╮╰╯─]")
_PYTHON_ERROR = re.compile(r"^[\w.]*(Error|Exception)(: |$)")


@dataclass
class Workspace:
    """A private directory holding copies of a fixture, and the named paths of one case.

    ``inputs`` and ``outputs`` name entries of ``paths``; ``cleanup`` unmounts what a case
    mounted once it has been checked.
    """

    root: Path
    paths: dict[str, Path]
    inputs: list[str]
    outputs: list[str]
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __call__(self, template: str) -> str:
        """``template`` with ``{name}`` replaced by the workspace path of that name."""
        return template.format(**{k: str(v) for k, v in self.paths.items()})

    def path(self, template: str) -> Path:
        return Path(self(template))


Mutation = Callable[[Workspace], None]
Check = Callable[[Workspace, "Outcome"], None]


@dataclass(frozen=True)
class Case:
    """One hostile input: damage, command line and expected outcome (see the module docstring)."""

    id: str
    args: tuple[str, ...]
    mutate: tuple[Mutation, ...] = ()
    error: tuple[str, ...] | None = None
    check: Check | None = None
    subprocess: bool = False
    marks: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.subprocess != self.id.startswith("subprocess-"):
            raise ValueError(f"case {self.id}: subprocess case ids start with 'subprocess-'")
        if (self.error is None) == (self.check is None):
            raise ValueError(f"case {self.id}: give exactly one of error and check")
        if self.error is not None and not any(
            n.startswith(("--", "'")) or "{" in n for n in self.error
        ):
            raise ValueError(f"case {self.id}: the error must name a file ({{path}}), an --option "
                             "or an 'argument'")

    def param(self) -> Any:
        """This case as a pytest parameter (id and marks attached)."""
        return pytest.param(self, id=self.id, marks=self.marks)


def params(cases: Iterable[Case]) -> list[Any]:
    """pytest parameters of ``cases``; duplicate ids are a mistake in the catalogue."""
    cases = list(cases)
    ids = [c.id for c in cases]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"duplicate case ids: {duplicated}")
    return [c.param() for c in cases]


@dataclass(frozen=True)
class Outcome:
    """What the command did: exit code, output, and an exception it let escape (in-process)."""

    exit_code: int
    stdout: str
    stderr: str
    escaped: str | None = None  # formatted traceback of an exception that escaped the CLI

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def invoke(argv: Sequence[str], in_subprocess: bool = False) -> Outcome:
    """Run ``crypten-fl <argv>`` in this process (CliRunner) or as ``python -m cli.app``."""
    if in_subprocess:
        env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, "-m", "crypten_fl.cli.app", *argv], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=300, check=False)
        return Outcome(proc.returncode, _plain(proc.stdout), _plain(proc.stderr))
    saved = dict(os.environ)  # `node` exports RANK, WORLD_SIZE, ... for its party
    try:
        result = CliRunner().invoke(app, list(argv))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    escaped = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        escaped = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
    return Outcome(result.exit_code, _plain(result.stdout), _plain(result.stderr), escaped)


def _plain(text: str) -> str:
    return _ANSI.sub("", text)


def run_case(case: Case, ws: Workspace) -> Outcome:
    """Damage the workspace, run the command and check every invariant; returns the outcome."""
    with ws.cleanup:
        for mutation in case.mutate:
            mutation(ws)
        argv = [ws(a) for a in case.args]
        before = snapshot(ws, [*ws.inputs, *(n for n in ws.outputs if ws.paths[n].exists())])
        existed = {n for n in ws.outputs if ws.paths[n].exists()}
        siblings = {p for n in ws.outputs for p in temp_siblings(ws.paths[n])}
        outcome = invoke(argv, case.subprocess)
        report = f"crypten-fl {' '.join(argv)}\nexit {outcome.exit_code}\n{outcome.text}"
        assert outcome.escaped is None, f"{report}\nexception escaped:\n{outcome.escaped}"
        assert "Traceback" not in outcome.text, report
        if case.error is not None:
            _check_failure(case, ws, outcome, report, existed)
            assert snapshot(ws, [*ws.inputs, *existed]) == before, f"inputs changed\n{report}"
        else:
            _check_success(case, ws, outcome, report)
            assert snapshot(ws, ws.inputs) == {
                k: v for k, v in before.items() if k.split("\0")[0] in ws.inputs
            }, f"inputs changed\n{report}"
        leftovers = [p for n in ws.outputs for p in temp_siblings(ws.paths[n])
                     if p not in siblings]
        assert not leftovers, f"temporary output left behind: {leftovers}\n{report}"
        return outcome


def error_message(outcome: Outcome, report: str) -> str:
    """The single ``error:`` line, or the text of click's usage-error box (exit code 2)."""
    lines = [ln.strip() for ln in outcome.stderr.splitlines()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if not errors and outcome.exit_code == 2 and "Usage:" in outcome.stderr:
        return " ".join(_BOX.sub(" ", outcome.stderr).split())
    assert len(errors) == 1, f"expected exactly one 'error:' line\n{report}"
    others = [ln for ln in outcome.text.splitlines() if _PYTHON_ERROR.match(ln.strip())]
    assert not others, f"exception text besides the error line: {others}\n{report}"
    return errors[0]


def _check_failure(case: Case, ws: Workspace, outcome: Outcome, report: str,
                   existed: set[str]) -> None:
    assert outcome.exit_code != 0, f"expected a failure\n{report}"
    message = error_message(outcome, report)
    for needle in case.error or ():
        assert ws(needle) in message, f"{ws(needle)!r} not in the error message\n{report}"
    created = [ws.paths[n] for n in ws.outputs if n not in existed and ws.paths[n].exists()]
    assert not created, f"output created by a failed command: {created}\n{report}"


def _check_success(case: Case, ws: Workspace, outcome: Outcome, report: str) -> None:
    assert outcome.exit_code == 0, f"expected success\n{report}"
    stray = [ln for ln in outcome.text.splitlines()
             if ln.strip().startswith("error:") or _PYTHON_ERROR.match(ln.strip())]
    assert not stray, f"error text in a successful run: {stray}\n{report}"
    assert case.check is not None
    case.check(ws, outcome)


def temp_siblings(out: Path) -> list[Path]:
    """Hidden ``.<name>.*`` siblings of an output path (temporary or partial outputs)."""
    parent = out.parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.name.startswith(f".{out.name}."))


def snapshot(ws: Workspace, names: Iterable[str]) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file (and the set of directories) under the named paths.

    An output inside an input (RUN/eval inside RUN) is left out of the input's files.
    """
    skip = {ws.paths[n] for n in ws.outputs if n not in names}
    state: dict[str, tuple[str, int]] = {}
    for name in names:
        root = ws.paths[name]
        entries = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        for path in entries:
            if any(path == s or s in path.parents for s in skip):
                continue
            key = f"{name}\0{path.relative_to(root) if path != root else '.'}"
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[key] = (digest, path.stat().st_mtime_ns)
            else:
                state[key] = ("dir", 0)
    return state


# --- mutations: files -----------------------------------------------------------------------


def edit_bytes(target: str, fn: Callable[[bytes], bytes]) -> Mutation:
    """Replace the bytes of file ``target`` by ``fn(bytes)``."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        path.write_bytes(fn(path.read_bytes()))
    return mutate


def truncate(target: str, keep: float | int) -> Mutation:
    """Cut a file: keep a fraction (float in (0, 1)) or a byte count (int; negative = drop)."""
    def cut(data: bytes) -> bytes:
        n = int(len(data) * keep) if isinstance(keep, float) else keep
        return data[:n]
    return edit_bytes(target, cut)


def flip_byte(target: str, at: float | int) -> Mutation:
    """Invert the bits of one byte (at a fraction of the length, or an index)."""
    def flip(data: bytes) -> bytes:
        i = int(len(data) * at) if isinstance(at, float) else at % len(data)
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    return edit_bytes(target, flip)


def write_file(target: str, data: bytes | str) -> Mutation:
    """Overwrite (or create) ``target`` with ``data``."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return mutate


def remove(target: str) -> Mutation:
    """Delete a file or directory."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return mutate


def rename(target: str, new_name: str) -> Mutation:
    """Rename a file or directory within its folder."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        path.rename(path.with_name(new_name))
    return mutate


def place(name: str, relative: str) -> Mutation:
    """Move the workspace path ``name`` to ``root/relative`` (e.g. a name with spaces)."""
    def mutate(ws: Workspace) -> None:
        new = ws.root / relative
        if ws.paths[name].exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            ws.paths[name].rename(new)
        ws.paths[name] = new
    return mutate


# --- mutations: CSV tables (.csv or .csv.gz) ------------------------------------------------


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")


def _write_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def edit_text(target: str, fn: Callable[[str], str]) -> Mutation:
    """Transform the decompressed text of a table (delimiter, BOM, line endings ...)."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        _write_text(path, fn(_read_text(path)))
    return mutate


Rows = list[dict[str, str]]


def edit_rows(target: str, fn: Callable[[list[str], Rows], tuple[list[str], Rows]]) -> Mutation:
    """Transform a table as (header, rows of dicts); written back with csv's minimal quoting."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        reader = csv.reader(io.StringIO(_read_text(path)))
        header = next(reader)
        rows = [dict(zip(header, r, strict=True)) for r in reader]
        header, rows = fn(header, rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([r.get(c, "") for c in header] for r in rows)
        _write_text(path, buffer.getvalue())
    return mutate


def rename_column(target: str, column: str, new: str) -> Mutation:
    return edit_rows(target, lambda h, rows: (
        [new if c == column else c for c in h], [{**r, new: r[column]} for r in rows]))


def drop_column(target: str, column: str) -> Mutation:
    return edit_rows(target, lambda h, rows: ([c for c in h if c != column], rows))


def set_cells(target: str, column: str, value: str,
              where: Callable[[dict[str, str]], bool] = lambda r: True,
              first_only: bool = False) -> Mutation:
    """Set ``column`` to ``value`` in the rows matching ``where`` (or only the first of them)."""
    def fn(header: list[str], rows: Rows) -> tuple[list[str], Rows]:
        hits = [i for i, r in enumerate(rows) if where(r)]
        assert hits, f"{target}: no row matches"
        for i in hits[:1] if first_only else hits:
            rows[i] = {**rows[i], column: value}
        return header, rows
    return edit_rows(target, fn)


def keep_rows(target: str, where: Callable[[int, dict[str, str]], bool]) -> Mutation:
    """Keep only the rows for which ``where(index, row)`` holds (none: header only)."""
    return edit_rows(target, lambda h, rows: (h, [r for i, r in enumerate(rows) if where(i, r)]))


def duplicate_rows(target: str, where: Callable[[dict[str, str]], bool] = lambda r: True
                   ) -> Mutation:
    """Append a second copy of every row matching ``where``."""
    return edit_rows(target, lambda h, rows: (h, rows + [r for r in rows if where(r)]))


def shuffle_rows(target: str, seed: int = 0) -> Mutation:
    """Put the rows in a random order (timestamps out of order)."""
    import random

    def fn(header: list[str], rows: Rows) -> tuple[list[str], Rows]:
        random.Random(seed).shuffle(rows)
        return header, rows
    return edit_rows(target, fn)


# --- mutations: parquet and JSON ------------------------------------------------------------


def edit_parquet(target: str, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> Mutation:
    """Rewrite a parquet file as ``fn(frame)``."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        fn(pl.read_parquet(path)).write_parquet(path)
    return mutate


def edit_json(target: str, fn: Callable[[Any], Any]) -> Mutation:
    """Rewrite a JSON file as ``fn(data)``."""
    def mutate(ws: Workspace) -> None:
        path = ws.path(target)
        path.write_text(json.dumps(fn(json.loads(path.read_text()))))
    return mutate


def without_key(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: {k: v for k, v in data.items() if k != key}


def with_values(**values: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: {**data, **values}


# --- mutations: file systems (we run as root in the test container) -------------------------


def _mount(ws: Workspace, args: list[str], target: Path) -> None:
    proc = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount ({' '.join(args)}): {proc.stderr.strip() or 'not root?'}")
    ws.cleanup.callback(subprocess.run, ["umount", "-l", str(target)], check=False)


def tmpfs(name: str, size: str = "64k", readonly: bool = False) -> Mutation:
    """Mount a fresh tmpfs of ``size`` (a full disk) or read-only at ``root/name``, as ``{name}``.

    Read-only is a mount option rather than chmod because root ignores permission bits.
    """
    def mutate(ws: Workspace) -> None:
        target = ws.root / name
        target.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if readonly else "")
        _mount(ws, ["-t", "tmpfs", "-o", options, "tmpfs"], target)
        ws.paths[name] = target
    return mutate


def readonly_view(name: str) -> Mutation:
    """Replace the input ``{name}`` by a read-only bind mount of it (reading must still work)."""
    def mutate(ws: Workspace) -> None:
        source = ws.paths[name]
        view = ws.root / f"{name}-readonly"
        view.mkdir()
        _mount(ws, ["--bind", str(source)], view)
        _mount(ws, ["-o", "remount,ro,bind"], view)
        ws.paths[name] = view
    return mutate


def copy_into(ws_root: Path, source: Path, name: str) -> Path:
    """Copy a pristine fixture directory into a workspace (symlinks kept as links)."""
    return Path(shutil.copytree(source, ws_root / name, symlinks=True))
