"""Nodes on their own with a separate rendezvous server: rank 0 dies mid-round, the others go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.identity import provision
from crypten_fl.fedtrain.launch import free_port
from helpers.federation import TINY_MODEL, small_federation
from helpers.nodes import node_argv


@pytest.mark.slow
def test_rank_0_killed_mid_round_the_other_nodes_finish_through_the_rendezvous_server(
        tmp_path) -> None:
    fed = small_federation(tmp_path / "f", n_patients=200, seed=8, hospitals=4)
    config = TrainConfig(fed=str(fed), rounds=3, seed=3, min_hospitals=3, **TINY_MODEL)
    (tmp_path / "config.json").write_text(json.dumps(config.to_json()))
    address = f"127.0.0.1:{free_port()}"
    rendezvous = f"tcp://{address}"
    provision(tmp_path / "kits", 4, ttp=False, rendezvous=address)  # a store host of its own
    env = {**os.environ, "CRYPTEN_FL_KILL_AT": "0:2", "CRYPTEN_FL_REFORM_WINDOW_S": "2"}
    server = subprocess.Popen(
        [sys.executable, "-m", "crypten_fl.cli.app", "node", "--kit",
         str(tmp_path / "kits" / "rendezvous"), "--out", str(tmp_path / "server"),
         "--timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    nodes = [subprocess.Popen(
        node_argv(r, rendezvous, fed / f"hospital_{r}", tmp_path / "config.json",
                  tmp_path / f"node{r}", world_size=4, kits=tmp_path / "kits"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(4)]
    outputs = [n.communicate(timeout=300)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [-9, 0, 0, 0], outputs
    server_output = server.communicate(timeout=60)[0]
    assert server.returncode == 0 and "the run is over" in server_output, server_output
    results = [json.loads((tmp_path / f"node{r}" / "result.json").read_text()) for r in (1, 2, 3)]
    assert all(res["group"]["members"] == [1, 2, 3] for res in results)
    assert results[0]["group"]["reformed"][0]["dropped"] == [0]
    assert (tmp_path / "node1" / "model.safetensors").exists()  # the lowest hospital left saves it
    assert not (tmp_path / "node0" / "result.json").exists()
