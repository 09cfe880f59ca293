"""`crypten-fl node`: hospitals started separately over TCP give the single-host result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers.nodes import (
    Reference,
    assert_same_as_reference,
    launcher_reference,
    node_argv,
    wait_for_nodes,
)
from typer.testing import CliRunner

from cli.app import app
from fedtrain.launch import free_port


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    return launcher_reference(tmp_path_factory)


@pytest.fixture(scope="module")
def fed(reference) -> Path:
    return reference.fed


def test_three_separately_started_nodes_equal_the_local_launcher(reference, tmp_path) -> None:
    rendezvous = f"tcp://127.0.0.1:{free_port()}"
    outs = [tmp_path / f"node{r}" for r in range(3)]
    nodes = [subprocess.Popen(node_argv(r, rendezvous, reference.fed / f"hospital_{r}",
                                        reference.config, outs[r]),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(3)]
    outputs = wait_for_nodes(nodes)
    assert "node 0 finished" in outputs[0]
    assert_same_as_reference(outs, reference)
    # a node reads only its own directory: its spec names no other hospital
    spec = json.loads((outs[1] / "spec.json").read_text())
    assert spec["hospital_dirs"] == [str(reference.fed / "hospital_1")]


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
