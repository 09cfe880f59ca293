"""Parties forked from the launcher's template process: each one is still a process of its own,
with only its own environment, kit, directory and log, and the exit codes of a command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crypten_fl.fedtrain.launch import free_port, launch
from crypten_fl.fedtrain.party_process import PartyProcess
from helpers.parties import party_processes, temp_for_killed_process


def test_each_party_has_its_own_environment_kit_directory_and_log(tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the launcher's directory when it starts the parties
    monkeypatch.setenv("LAUNCHER_ONLY_SETTING", "x")
    results = launch("helpers.party_jobs:own_surroundings", [{}, {}, {}], Path("parties"),
                     env={"CRYPTEN_FL_EXTRA": "y"})
    assert results[0] is not None
    pids = {r["pid"] for r in results if r}
    assert len(pids) == 3 and os.getpid() not in pids
    kits = [r["env"]["CRYPTEN_FL_KIT"] for r in results if r]
    assert [Path(k).name for k in kits] == ["hospital_0", "hospital_1", "hospital_2"]
    for rank, result in enumerate(results):
        assert result is not None
        env = result["env"]
        assert env["RANK"] == str(rank) and env["WORLD_SIZE"] == "3"
        assert env["CRYPTEN_FL_EXTRA"] == "y" and env["LAUNCHER_ONLY_SETTING"] == "x"
        # no other party's kit anywhere in this party's environment
        others = [k for i, k in enumerate(kits) if i != rank]
        assert not [v for v in env.values() for k in others if k in v]
        assert result["cwd"] == str(tmp_path)
        assert result["parent"] == int(env["CRYPTEN_FL_LAUNCHER_PID"]) != os.getpid()
        log = (tmp_path / "parties" / f"party_{rank}" / "party.log").read_text()
        assert f"party {rank} writes to its own log" in log
        assert all(f"party {r} writes" not in log for r in range(3) if r != rank)
    # the template the parties were forked from holds no kit, spec or party directory: not in
    # its environment, not among its open files
    template = Path("/proc") / str(results[0]["parent"])
    environment = (template / "environ").read_bytes().decode(errors="replace")
    opened = [os.readlink(fd) for fd in (template / "fd").iterdir()]
    for secret in [*kits, str(tmp_path / "parties")]:
        assert secret not in environment and not [f for f in opened if secret in f]
    names = {entry.split("=", 1)[0] for entry in environment.split("\0") if entry}
    assert not names & {"CRYPTEN_FL_KIT", "RANK", "WORLD_SIZE", "RENDEZVOUS"}


def _waiting_party(tmp_path: Path) -> PartyProcess:
    """A party that waits for a rendezvous nobody hosts."""
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "DISTRIBUTED_BACKEND": "gloo",
           "RENDEZVOUS": f"tcp://127.0.0.1:{free_port()}", "CRYPTEN_FL_TRANSPORT": "tcp"}
    argv = ["--job", "helpers.party_jobs:own_surroundings", "--workdir", str(tmp_path),
            "--timeout", "120"]
    return PartyProcess(argv, env, tmp_path / "party.log")


def test_a_signalled_party_reports_minus_the_signal_like_popen(tmp_path: Path) -> None:
    party = _waiting_party(tmp_path)
    assert party.poll() is None and party.returncode is None
    with pytest.raises(subprocess.TimeoutExpired):
        party.wait(timeout=0.2)
    party.send_signal(signal.SIGTERM)
    assert party.wait(timeout=30) == -signal.SIGTERM == party.poll()
    party.kill()  # a no-op once it has ended (its pid may belong to someone else by now)


def test_a_failing_party_exits_1_and_reports_why(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RENDEZVOUS"}
    party = PartyProcess(["--job", "x:y", "--workdir", str(tmp_path)], env,
                         tmp_path / "party.log")
    assert party.wait(timeout=60) == 1
    error = json.loads((tmp_path / "error.json").read_text())
    assert error["message"].startswith("RuntimeError: party environment incomplete")
    assert "Traceback" in (tmp_path / "party.log").read_text()


def test_parties_die_with_a_killed_launcher_even_a_stopped_one(tmp_path: Path) -> None:
    script = ("import sys; from pathlib import Path; from crypten_fl.fedtrain.launch import launch;"
              " launch('helpers.party_jobs:hang', [{}, {}, {}], Path(sys.argv[1]))")
    tests = str(Path(__file__).parent)
    with temp_for_killed_process() as temp:  # its throw-away kits are left in here
        launcher = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                                    env={**os.environ, "PYTHONPATH": tests, "TMPDIR": str(temp)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while sorted(party_processes(tmp_path).values()) != ["S", "S", "T"]:
            assert launcher.poll() is None and time.monotonic() < deadline, "parties never hung"
            time.sleep(0.2)
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 30
        while party_processes(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert party_processes(tmp_path) == {}
