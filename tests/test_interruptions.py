"""Interrupted runs: a hospital killed mid-round (with and without --min-hospitals) and the
launcher itself killed with SIGKILL; ``--resume`` must end with the uninterrupted model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import partial_dir, train
from helpers.federation import TINY_MODEL, small_federation
from helpers.parties import party_processes, temp_for_killed_process
from safetensors.torch import load_file

ROUNDS = 3


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return small_federation(tmp_path_factory.mktemp("fed4"), n_patients=240, seed=6, hospitals=4)


def _config(fed: Path, **kw: object) -> TrainConfig:
    return TrainConfig(fed=str(fed), **{"rounds": ROUNDS, "seed": 9, **TINY_MODEL, **kw})


@pytest.fixture(scope="module")
def reference(fed, tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("ref") / "run"
    train(_config(fed), out)
    return load_file(str(out / "model.safetensors"))


def _same(run: Path, reference: dict[str, torch.Tensor]) -> bool:
    model = load_file(str(run / "model.safetensors"))
    return model.keys() == reference.keys() and all(torch.equal(model[k], reference[k])
                                                    for k in reference)


@pytest.mark.slow  # test_train.py's crash-and-resume covers the same path in the default run
def test_hospital_killed_mid_round_stops_the_run_and_resume_gives_the_same_model(
        fed, reference, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    monkeypatch.setenv("CRYPTEN_FL_KILL_AT", "1:2")
    with pytest.raises(UserError, match=r"hospital 1 failed: killed by signal 9.*"
                                        r"Last completed round: 1.*--resume"):
        train(_config(fed), out)
    assert not out.exists() and (partial_dir(out) / "checkpoints" / "round_1" / "COMPLETE").exists()
    monkeypatch.delenv("CRYPTEN_FL_KILL_AT")
    summary = train(_config(fed), out, resume=True)
    assert summary.resumed_from == 1
    assert _same(out, reference)


def _hold_the_same_model(run: Path, round_index: int, hospitals: Iterable[int]) -> bool:
    """Whether these hospitals' checkpoints after ``round_index`` hold identical models."""
    states = [torch.load(run / "checkpoints" / f"round_{round_index}" / f"hospital_{h}.pt",
                         weights_only=True)["trainer"]["model"] for h in hospitals]
    return all(torch.equal(s[k], states[0][k]) for s in states[1:] for k in states[0])


@pytest.mark.slow
def test_launcher_killed_with_sigkill_then_resume_gives_the_same_model(
        fed, reference, tmp_path) -> None:
    out = tmp_path / "run"
    (tmp_path / "config.json").write_text(json.dumps(_config(fed).to_json()))
    script = ("import sys; from pathlib import Path;"
              " from crypten_fl.fedtrain.config import TrainConfig;"
              " from crypten_fl.fedtrain.run.coordinator import train;"
              " train(TrainConfig.load(Path(sys.argv[1])), Path(sys.argv[2]))")
    argv = [sys.executable, "-c", script, str(tmp_path / "config.json"), str(out)]
    with temp_for_killed_process() as temp:
        # hospital 1 hangs in round 2 (SIGSTOP), so the parties are certainly alive when the
        # launcher is killed; the resume below runs without it
        launcher = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "CRYPTEN_FL_STALL_AT": "1:2",
                                         "TMPDIR": str(temp)})  # its kits are left in here
        metrics = partial_dir(out) / "metrics.jsonl"
        deadline = time.monotonic() + 240
        while not (metrics.exists() and metrics.read_text().strip()):
            assert launcher.poll() is None and time.monotonic() < deadline, "run never got going"
            time.sleep(0.2)
        while len(party_processes(str(partial_dir(out)))) < 4:  # all four in round 2
            assert launcher.poll() is None and time.monotonic() < deadline, "parties never seen"
            time.sleep(0.2)
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 30  # the parties die with their launcher (PR_SET_PDEATHSIG)
        while party_processes(str(partial_dir(out))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert party_processes(str(partial_dir(out))) == {}
    done = [json.loads(x)["round"] for x in metrics.read_text().splitlines()]
    summary = train(_config(fed), out, resume=True)
    assert summary.resumed_from == max(done) == 1
    assert _same(out, reference)


def test_a_hospital_dropping_out_mid_round_the_others_finish_the_run(
        fed, reference, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    monkeypatch.setenv("CRYPTEN_FL_KILL_AT", "2:2")
    monkeypatch.setenv("CRYPTEN_FL_REFORM_WINDOW_S", "2")
    summary = train(_config(fed, min_hospitals=3), out)
    assert summary.rounds_completed == ROUNDS
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(x["hospitals"]) for x in lines] == [["0", "1", "2", "3"], ["0", "1", "3"],
                                                       ["0", "1", "3"]]
    membership = json.loads((out / "comm.json").read_text())["membership"]
    assert membership["finished"] == ["0", "1", "3"]
    assert [d["party"] for d in membership["dropped"]] == [2]
    assert "killed by signal 9" in membership["dropped"][0]["reason"]
    assert [(r["members"], r["dropped"]) for r in membership["reformed"]] == [([0, 1, 3], [2])]
    # every survivor holds the same global model after the re-formed rounds
    assert _hold_the_same_model(out, 3, (0, 1, 3))
    assert set(json.loads((out / "test_metrics.json").read_text())["per_hospital"]) == {
        "hospital_0", "hospital_1", "hospital_3"}
    assert not _same(out, reference)  # round 2 onwards averaged three hospitals, not four


def test_a_dropped_hospital_restarted_rejoins_and_ends_with_the_global_model(
        fed, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    monkeypatch.setenv("CRYPTEN_FL_KILL_AT", "2:2")
    monkeypatch.setenv("CRYPTEN_FL_REFORM_WINDOW_S", "2")
    # with an adaptive server optimizer: the rejoining hospital must also be handed its state
    summary = train(_config(fed, min_hospitals=3, rounds=5, server_opt="fedadam"), out,
                    restart_dropped=True)
    assert summary.rounds_completed == 5
    membership = json.loads((out / "comm.json").read_text())["membership"]
    assert membership["finished"] == ["0", "1", "2", "3"]
    assert membership["dropped"][0]["party"] == 2 and membership["dropped"][0]["restarted"]
    assert [r.get("rejoined") for r in membership["reformed"]] == [None, [2]]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    back = [x["round"] for x in lines if "2" in x["hospitals"] and x["round"] > 1]
    assert back and back == list(range(back[0], 6)) and back[0] >= 3
    assert _hold_the_same_model(out, 5, range(4))
    servers = [torch.load(out / "checkpoints" / "round_5" / f"hospital_{h}.pt",
                          weights_only=True)["strategy"] for h in range(4)]
    assert all(int(s["server_opt.steps"]) == 5 for s in servers)
    assert all(torch.equal(s[k], servers[0][k]) for s in servers for k in ("server_opt.m",
                                                                           "server_opt.v"))
    assert "hospital_2" in json.loads((out / "test_metrics.json").read_text())["per_hospital"]


@pytest.mark.slow
def test_resume_with_a_hospital_behind_hands_it_the_global_state(fed, tmp_path, monkeypatch
                                                                  ) -> None:
    out = tmp_path / "run"
    monkeypatch.setenv("CRYPTEN_FL_KILL_AT", "2:2")
    monkeypatch.setenv("CRYPTEN_FL_FAIL_AT", "0:3")  # then too few are left: the run stops
    monkeypatch.setenv("CRYPTEN_FL_REFORM_WINDOW_S", "2")
    config = _config(fed, min_hospitals=3, rounds=4)
    with pytest.raises(UserError, match=r"--min-hospitals is 3.*Last completed round: 3"):
        train(config, out)
    monkeypatch.delenv("CRYPTEN_FL_KILL_AT")
    monkeypatch.delenv("CRYPTEN_FL_FAIL_AT")
    summary = train(config, out, resume=True)  # hospital 2 restores round 1, gets round 3's state
    assert summary.resumed_from == 3
    assert _hold_the_same_model(out, 4, range(4))
