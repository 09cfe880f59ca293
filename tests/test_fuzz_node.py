"""Hostile inputs for `crypten-fl node`, see helpers/fuzz.py.

Only inputs a node must refuse before it connects to anyone: its options, its own data directory
and the run configuration. The node's --out is its working directory (checkpoints, logs), so it
must not be created when the node refuses to start.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.fuzz import (
    Case,
    Workspace,
    copy_into,
    edit_json,
    params,
    remove,
    run_case,
    with_values,
    write_file,
)
from helpers.fuzz_fixtures import tiny_federation, tiny_run

RDV = "tcp://127.0.0.1:9"
BASE = ("node", "--out", "{out}", "--rendezvous", RDV, "--data", "{data}",
        "--run-config", "{config}")
CONFIG = "{config}"


def reported(what: str) -> tuple[Any, ...]:
    """A case that showed a defect (since fixed): kept as a regression case."""
    return ()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_run(tmp_path_factory), tiny_federation(tmp_path_factory)


def workspace(pristine: tuple[Path, Path], root: Path) -> Workspace:
    run, fed = pristine
    data = copy_into(root, fed / "hospital_0", "hospital_0")
    config = Path(shutil.copy(run / "config.json", root / "config.json"))
    return Workspace(root, {"data": data, "config": config, "out": root / "node"},
                     inputs=["data", "config"], outputs=["out"])


def node(case_id: str, *args: str, mutate: tuple[Any, ...] = (), error: tuple[str, ...],
         marks: tuple[Any, ...] = ()) -> Case:
    # a node that gets past its checks starts its party: in a process of its own, not pytest's
    return Case(case_id, (*BASE, *args), mutate, error=error, marks=marks,
                subprocess=case_id.startswith("subprocess-"))


CASES = [
    node("rank-negative", "--rank", "-1", "--world-size", "2", error=("--rank -1",)),
    node("rank-equals-world-size", "--rank", "2", "--world-size", "2", error=("--rank 2",)),
    node("world-size-0", "--rank", "0", "--world-size", "0", error=("--world-size",)),
    node("rank-not-a-number", "--rank", "first", "--world-size", "2", error=("--rank",)),
    node("rendezvous-http", "--rank", "0", "--world-size", "2", "--rendezvous", "http://x:1",
         error=("--rendezvous",)),
    node("rendezvous-without-port", "--rank", "0", "--world-size", "2", "--rendezvous",
         "tcp://127.0.0.1", error=("--rendezvous",)),
    Case("data-and-config-missing", ("node", "--out", "{out}", "--rendezvous", RDV, "--rank",
                                     "0", "--world-size", "2"), (),
         error=("--data", "--run-config")),
    node("data-dir-missing", "--rank", "0", "--world-size", "2", mutate=(remove("{data}"),),
         error=("{data}", "not found")),
    node("data-manifest-not-json", "--rank", "0", "--world-size", "2",
         mutate=(write_file("{data}/manifest.json", "{"),), error=("{data}/manifest.json",)),
    node("data-manifest-vertical-missing", "--rank", "0", "--world-size", "2",
         mutate=(edit_json("{data}/manifest.json", lambda m: {
             k: v for k, v in m.items() if k != "vertical"}),),
         error=("{data}/manifest.json", "vertical")),
    node("config-missing", "--rank", "0", "--world-size", "2", mutate=(remove(CONFIG),),
         error=(CONFIG,)),
    node("config-not-json", "--rank", "0", "--world-size", "2",
         mutate=(write_file(CONFIG, "rounds: 3"),), error=(CONFIG,)),
    node("config-rounds-0", "--rank", "0", "--world-size", "2",
         mutate=(edit_json(CONFIG, with_values(rounds=0)),), error=("--rounds",)),
    node("config-a-list", "--rank", "0", "--world-size", "2",
         mutate=(write_file(CONFIG, "[]"),), error=(CONFIG,),
         marks=reported("AttributeError from TrainConfig.from_json (fedtrain/run/config.py)")),
    node("rejoin-without-min-hospitals", "--rank", "0", "--world-size", "2", "--rejoin",
         error=("--rejoin",), marks=reported("--out is created before --rejoin is checked")),
    node("subprocess-timeout-0", "--rank", "0", "--world-size", "2", "--timeout", "0",
         error=("--timeout",), marks=(*reported("--timeout 0 is not validated: the node "
                                                "connects and fails with a torch C++ stack dump"),
                                      pytest.mark.slow)),
    node("subprocess-resume-round-negative", "--rank", "0", "--world-size", "2",
         "--resume-round", "-1", "--timeout", "0.5", error=("--resume-round",),
         marks=(*reported("--resume-round -1 is not validated"), pytest.mark.slow)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_node(case: Case, pristine: tuple[Path, Path], tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
