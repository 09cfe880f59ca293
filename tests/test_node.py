"""`crypten-fl node`: hospitals started separately over TCP give the single-host result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.federation import TINY_MODEL, small_federation
from safetensors.torch import load_file
from typer.testing import CliRunner

from cli.app import app
from fedtrain.launch import free_port
from fedtrain.run.config import TrainConfig
from fedtrain.run.coordinator import train

SMALL = {"rounds": 2, "seed": 3, **TINY_MODEL}


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return small_federation(tmp_path_factory.mktemp("node-fed"), n_patients=150, seed=8,
                            hospitals=3)


def test_three_separately_started_nodes_equal_the_local_launcher(fed, tmp_path) -> None:
    config = TrainConfig(fed=str(fed), **SMALL)
    reference = train(config, tmp_path / "local").run_dir
    (tmp_path / "config.json").write_text(json.dumps(config.to_json()))
    rendezvous = f"tcp://127.0.0.1:{free_port()}"
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.app", "node", "--rank", str(r), "--world-size", "3",
             "--rendezvous", rendezvous, "--data", str(fed / f"hospital_{r}"),
             "--run-config", str(tmp_path / "config.json"), "--out", str(tmp_path / f"node{r}"),
             "--timeout", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in range(3)
    ]
    outputs = [n.communicate(timeout=240)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0, 0], outputs
    assert "node 0 finished" in outputs[0]
    ours = load_file(str(tmp_path / "node0" / "model.safetensors"))
    theirs = load_file(str(reference / "model.safetensors"))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    # a node reads only its own directory: its spec names no other hospital
    spec = json.loads((tmp_path / "node1" / "spec.json").read_text())
    assert spec["hospital_dirs"] == [str(fed / "hospital_1")]


def test_node_rejects_a_bad_rank_and_a_missing_data_dir(fed, tmp_path, monkeypatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "RENDEZVOUS"):
        monkeypatch.delenv(key, raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["node", "--rank", "5", "--world-size", "3", "--rendezvous",
                                 "tcp://127.0.0.1:1", "--data", str(fed / "hospital_0"),
                                 "--run-config", "x.json", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "--rank 5" in result.output
    result = runner.invoke(app, ["node", "--rank", "0", "--world-size", "3", "--rendezvous",
                                 "tcp://127.0.0.1:1", "--data", str(tmp_path / "nope"),
                                 "--run-config", "x.json", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "hospital directory not found" in result.output
    import os

    assert "RANK" not in os.environ  # nothing was set up for a node that could not start
