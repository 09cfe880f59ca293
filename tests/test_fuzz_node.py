"""Hostile inputs for `crypten-fl node`, see helpers/fuzz.py.

Only inputs a node must refuse before it connects to anyone: its options, its own data directory
and the run configuration. The node's --out is its working directory (checkpoints, logs), so it
must not be created when the node refuses to start.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from crypten_fl.fedtrain.identity import provision
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
BASE = ("node", "--insecure-transport", "--out", "{out}", "--rendezvous", RDV, "--data",
        "{data}", "--run-config", "{config}")
#: a node with its kit: who it is comes from the kit
KIT_BASE = ("node", "--kit", "{kits}/hospital_0", "--out", "{out}", "--rendezvous", RDV,
            "--data", "{data}", "--run-config", "{config}")
CONFIG = "{config}"


def reported(what: str) -> tuple[Any, ...]:
    """A case that showed a defect (since fixed): kept as a regression case."""
    return ()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    kits = tmp_path_factory.mktemp("fuzz-node-kits") / "kits"
    provision(kits, 2, ttp=False, rendezvous=None)
    return tiny_run(tmp_path_factory), tiny_federation(tmp_path_factory), kits


def workspace(pristine: tuple[Path, Path, Path], root: Path, insecure: bool) -> Workspace:
    run, fed, kits = pristine
    data = copy_into(root, fed / "hospital_0", "hospital_0")
    config = json.loads((run / "config.json").read_text())
    (root / "config.json").write_text(json.dumps({**config, "insecure_transport": insecure}))
    kits = copy_into(root, kits, "kits")
    return Workspace(root, {"data": data, "config": root / "config.json", "out": root / "node",
                            "kits": kits}, inputs=["data", "config", "kits"], outputs=["out"])


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
    Case("data-and-config-missing", ("node", "--insecure-transport", "--out", "{out}",
                                     "--rendezvous", RDV, "--rank", "0", "--world-size", "2"), (),
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
         marks=reported("AttributeError from TrainConfig.from_json (fedtrain/config.py)")),
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


def with_kit(case_id: str, *args: str, mutate: tuple[Any, ...] = (), error: tuple[str, ...]
             ) -> Case:
    return Case(f"kit-{case_id}", (*KIT_BASE, *args), mutate, error=error)


def copy_file(source: str, target: str) -> Any:
    def mutate(ws: Workspace) -> None:
        shutil.copy(ws.path(source), ws.path(target))
    return mutate


KIT = "{kits}/hospital_0"
KIT_CASES = [
    Case("kit-missing", BASE[:1] + BASE[2:], (), error=("--kit", "--insecure-transport")),
    with_kit("dir-missing", mutate=(remove(KIT),), error=(KIT, "not found")),
    *[with_kit(f"{name.replace('.', '-')}-{what}", mutate=(change(f"{KIT}/{name}"),),
               error=(f"{KIT}/{name}",))
      for name in ("member.key", "member.crt", "ca.crt", "federation.json")
      for what, change in (("missing", remove), ("garbage", lambda t: write_file(t, "x")))],
    with_kit("key-of-another-member", mutate=(copy_file("{kits}/hospital_1/member.key",
                                                        f"{KIT}/member.key"),),
             error=(f"{KIT}/member.key",)),
    with_kit("is-the-ca-directory", "--kit", "{kits}/ca", error=("{kits}/ca/member.key",)),
    with_kit("rank-disagrees", "--rank", "1", error=("--rank 1", KIT)),
    with_kit("world-size-disagrees", "--world-size", "3", error=("--world-size 3",)),
    with_kit("and-insecure-transport", "--insecure-transport",
             error=("--kit", "--insecure-transport")),
    with_kit("ttp-server-with-a-hospital-kit", "--ttp-server", error=("--ttp-server", KIT)),
    with_kit("config-says-insecure", mutate=(edit_json(CONFIG, with_values(
        insecure_transport=True)),), error=("--run-config {config}", "insecure_transport")),
    node("insecure-but-config-is-not", "--rank", "0", "--world-size", "2",
         mutate=(edit_json(CONFIG, with_values(insecure_transport=False)),),
         error=("--run-config {config}", "insecure_transport")),
]


@pytest.mark.parametrize("case", params([*CASES, *KIT_CASES]))
def test_node(case: Case, pristine: tuple[Path, Path, Path], tmp_path: Path) -> None:
    insecure = "--insecure-transport" in case.args and "--kit" not in case.args
    run_case(case, workspace(pristine, tmp_path, insecure))
