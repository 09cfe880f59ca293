"""`crypten-fl node`: hospitals started separately over TCP give the single-host result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.fedtrain.launch import free_port
from helpers.nodes import (
    Reference,
    assert_same_as_reference,
    launcher_reference,
    node_argv,
    wait_for_nodes,
)
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    return launcher_reference(tmp_path_factory)


@pytest.fixture(scope="module")
def fed(reference) -> Path:
    return reference.fed


def test_three_separately_started_nodes_equal_the_local_launcher(reference, tmp_path) -> None:
    """Each node knows who it is from its kit alone and talks over the federation's channels."""
    rendezvous = f"tcp://127.0.0.1:{free_port()}"
    outs = [tmp_path / f"node{r}" for r in range(3)]
    nodes = [subprocess.Popen(node_argv(r, rendezvous, reference.fed / f"hospital_{r}",
                                        reference.config, outs[r], kits=reference.kits),
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
    result = runner.invoke(app, ["node", "--insecure-transport", "--rank", "5", "--world-size",
                                 "3", "--rendezvous", "tcp://127.0.0.1:1", "--data",
                                 str(fed / "hospital_0"), "--run-config", "x.json", "--out",
                                 str(tmp_path / "o")])
    assert result.exit_code == 1 and "--rank 5" in result.output
    result = runner.invoke(app, ["node", "--insecure-transport", "--rank", "0", "--world-size",
                                 "3", "--rendezvous", "tcp://127.0.0.1:1", "--data",
                                 str(tmp_path / "nope"), "--run-config", "x.json", "--out",
                                 str(tmp_path / "o")])
    assert result.exit_code == 1 and "hospital directory not found" in result.output
    import os

    assert "RANK" not in os.environ  # nothing was set up for a node that could not start


def test_a_node_is_who_its_kit_says(reference, tmp_path) -> None:
    """The kit decides the identity: options may repeat it but never change it, and a node
    without a kit runs only when plain TCP is asked for explicitly."""
    runner = CliRunner()
    base = ["node", "--rendezvous", "tcp://127.0.0.1:1", "--data",
            str(reference.fed / "hospital_1"), "--run-config", str(reference.config),
            "--out", str(tmp_path / "o")]
    kit = str(reference.kits / "hospital_1")
    cases = {
        (): "--kit: required",
        ("--kit", kit, "--rank", "2"): f"--rank 2: --kit {kit} is hospital_1 (rank 1)",
        ("--kit", kit, "--world-size", "4"): "--world-size 4: the federation of --kit",
        ("--kit", kit, "--insecure-transport"): "--kit and --insecure-transport exclude",
        ("--kit", kit, "--ttp-server"): "--ttp-server: --kit",
        ("--kit", str(reference.kits / "ca")): "ca/member.key: file not found (a kit holds",
        ("--insecure-transport", "--rank", "1", "--world-size", "3"):
            "the run is configured without insecure_transport",
    }
    for extra, message in cases.items():
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 1 and message in " ".join(result.output.split()), (
            extra, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
