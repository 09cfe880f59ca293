"""The fuzz harness itself: each invariant of helpers/fuzz.run_case catches its violation.

The command is replaced by a fake that misbehaves in one way per test, so that a harness which
cannot fail would show up here (not counted as a stage by tests/helpers/fuzz_report.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import fuzz
from helpers.fuzz import Case, Outcome, Workspace, run_case

ERROR = Case("bad", ("cmd", "{inp}"), error=("{inp}/a.txt", "broken"))
OK = Case("good", ("cmd",), check=lambda ws, outcome: None)


def workspace(tmp_path: Path) -> Workspace:
    (tmp_path / "inp").mkdir()
    (tmp_path / "inp" / "a.txt").write_text("data")
    return Workspace(tmp_path, {"inp": tmp_path / "inp", "out": tmp_path / "out"},
                     inputs=["inp"], outputs=["out"])


def fake(monkeypatch: pytest.MonkeyPatch, ws: Workspace, outcome: Outcome,
         effect: Callable[[Workspace], object] = lambda ws: None) -> None:
    def invoke(argv: list[str], in_subprocess: bool = False) -> Outcome:
        effect(ws)
        return outcome
    monkeypatch.setattr(fuzz, "invoke", invoke)


def failure(ws: Workspace, extra: str = "") -> Outcome:
    return Outcome(1, "", f"{extra}error: {ws.paths['inp']}/a.txt: broken\n")


def test_a_clean_failure_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    fake(monkeypatch, ws, failure(ws, "progress 1/4\n"))
    run_case(ERROR, ws)


OUTCOMES: dict[str, Callable[[Workspace], Outcome]] = {
    "escaped": lambda ws: Outcome(1, "", failure(ws).stderr, escaped="ValueError: boom"),
    "traceback": lambda ws: failure(ws, "Traceback (most recent call last):\n"),
    "exit-0": lambda ws: Outcome(0, "", failure(ws).stderr),
    "two-error-lines": lambda ws: failure(ws, "error: something else\n"),
    "python-error-line": lambda ws: failure(ws, "KeyError: 'x'\n"),
    "needle-missing": lambda ws: Outcome(1, "", "error: broken\n"),
}
EFFECTS: dict[str, Callable[[Workspace], object]] = {
    "output-created": lambda ws: ws.paths["out"].mkdir(),
    "temp-sibling-left": lambda ws: (ws.root / ".out.tmp-123").mkdir(),
    "input-changed": lambda ws: (ws.paths["inp"] / "a.txt").write_text("DATA"),
    "input-added": lambda ws: (ws.paths["inp"] / "new.txt").write_text(""),
}


@pytest.mark.parametrize("violation", [*OUTCOMES, *EFFECTS])
def test_each_violation_is_caught(violation: str, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    outcome = OUTCOMES.get(violation, failure)(ws)
    fake(monkeypatch, ws, outcome, EFFECTS.get(violation, lambda ws: None))
    with pytest.raises(AssertionError):
        run_case(ERROR, ws)


def test_success_runs_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    fake(monkeypatch, ws, Outcome(0, "done\n", ""))
    run_case(OK, ws)
    failing = Case("wrong", ("cmd",), check=lambda ws, outcome: pytest.fail("wrong result"))
    (tmp_path / "again").mkdir()
    with pytest.raises(pytest.fail.Exception):
        run_case(failing, workspace(tmp_path / "again"))


def test_a_success_with_an_error_line_fails(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    fake(monkeypatch, ws, Outcome(0, "", "error: but exit 0\n"))
    with pytest.raises(AssertionError):
        run_case(OK, ws)


def test_case_must_name_a_file_or_option() -> None:
    with pytest.raises(ValueError, match="must name"):
        Case("vague", ("cmd",), error=("something is wrong",))
    with pytest.raises(ValueError, match="exactly one"):
        Case("both", ("cmd",), error=("--x",), check=lambda ws, outcome: None)
