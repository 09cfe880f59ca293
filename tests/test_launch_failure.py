"""How the launcher words a party's failure: its own report first, the signal only without one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from crypten_fl.fedtrain.launch import _failure, _Party, with_ttp_name


def _party(tmp_path: Path, code: str, report: str | None) -> _Party:
    if report is not None:
        (tmp_path / "error.json").write_text(json.dumps({"message": report, "user": False}))
    process = subprocess.Popen([sys.executable, "-c", code])
    process.wait()
    return _Party(1, tmp_path, process)


def test_a_party_that_reported_its_error_and_then_aborted_is_named_by_its_report(tmp_path) -> None:
    p = _party(tmp_path, "import os; os.abort()", "RuntimeError: simulated hospital crash")
    assert p.process.returncode == -signal.SIGABRT
    message = str(_failure(p, p.process.returncode, lambda r: f"hospital {r}"))
    assert message.startswith("hospital 1 failed: RuntimeError: simulated hospital crash (")


def test_a_party_killed_without_a_report_is_named_by_the_signal(tmp_path) -> None:
    p = _party(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", None)
    message = str(_failure(p, p.process.returncode, lambda r: f"hospital {r}"))
    assert message.startswith("hospital 1 failed: killed by signal 9 (")


def test_a_party_that_exited_without_a_report_is_named_by_its_exit_code(tmp_path) -> None:
    p = _party(tmp_path, "raise SystemExit(3)", None)
    message = str(_failure(p, p.process.returncode, lambda r: f"hospital {r}"))
    assert message.startswith("hospital 1 failed: exit code 3 (")


def test_the_ttp_is_named_by_its_role_not_looked_up_among_the_hospitals(tmp_path) -> None:
    specs = [{"hospital": 0}, {"hospital": 1}, {"hospital": 2}]
    name = with_ttp_name(lambda r: f"hospital {specs[r]['hospital']}", len(specs))
    assert [name(r) for r in range(4)] == ["hospital 0", "hospital 1", "hospital 2",
                                           "the trusted third party (TTP)"]
    p = _party(tmp_path, "import os; os.abort()", None)
    p.rank = 3
    assert str(_failure(p, p.process.returncode, name)).startswith(
        "the trusted third party (TTP) failed: killed by signal 6 (")
