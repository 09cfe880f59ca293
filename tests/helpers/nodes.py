"""Separately started `crypten-fl node` processes and the single-host run they must reproduce."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.identity import provision
from crypten_fl.fedtrain.run.coordinator import train
from safetensors.torch import load_file

from helpers.federation import TINY_MODEL, small_federation

#: a 2-round run of the tiny model on 3 hospitals
NODE_RUN = {"rounds": 2, "seed": 3, **TINY_MODEL}
HOSPITALS = 3


@dataclass(frozen=True)
class Reference:
    """The fixture federation, its run configuration file, the local launcher's run of it, and
    the kits of a federation of its hospitals (hospital_0 hosts the store)."""

    fed: Path
    config: Path
    run_dir: Path
    kits: Path


_session: dict[str, Reference] = {}


def launcher_reference(factory: pytest.TempPathFactory) -> Reference:
    """The single-host launcher run every node test compares with (made once per session)."""
    if "reference" not in _session:
        root = factory.mktemp("node-reference")
        fed = small_federation(root, n_patients=150, seed=8, hospitals=HOSPITALS)
        config = TrainConfig(fed=str(fed), **NODE_RUN)
        run_dir = train(config, root / "local").run_dir
        (root / "config.json").write_text(json.dumps(config.to_json()))
        provision(root / "kits", HOSPITALS, ttp=False, rendezvous=None)
        _session["reference"] = Reference(fed, root / "config.json", run_dir, root / "kits")
    return _session["reference"]


def node_argv(rank: int, rendezvous: str, data: Path, config: Path, out: Path,
              world_size: int = HOSPITALS, timeout: float = 30.0,
              kits: Path | None = None) -> list[str]:
    """The command line of hospital ``rank``'s node (``python -m cli.app node ...``): with its
    kit from ``kits`` (who it is comes from the kit), else over ``--insecure-transport``."""
    who = (["--kit", str(kits / f"hospital_{rank}")] if kits is not None else
           ["--insecure-transport", "--rank", str(rank), "--world-size", str(world_size)])
    return [sys.executable, "-m", "crypten_fl.cli.app", "node", *who, "--rendezvous", rendezvous,
            "--data", str(data), "--run-config", str(config), "--out", str(out),
            "--timeout", str(timeout)]


def wait_for_nodes(nodes: list[subprocess.Popen], timeout: float = 240.0) -> list[str]:
    """Wait for every node (started with stdout=PIPE, text=True); assert each succeeded."""
    outputs = [n.communicate(timeout=timeout)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0] * len(nodes), outputs
    return outputs


def assert_same_as_reference(node_outs: list[Path], reference: Reference) -> None:
    """Rank 0's model is bit-identical to the launcher's; every test metric is equal."""
    ours = load_file(str(node_outs[0] / "model.safetensors"))
    theirs = load_file(str(reference.run_dir / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    expected = json.loads((reference.run_dir / "test_metrics.json").read_text())
    results = [json.loads((out / "result.json").read_text()) for out in node_outs]
    per_hospital = {k: v for res in results for k, v in res["test"].items()}
    assert per_hospital == expected["per_hospital"]
    assert all(res["overall"] == expected["overall"] for res in results)
