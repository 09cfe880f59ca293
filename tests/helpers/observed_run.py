"""A 1-round ``split`` run over 3 hospitals and the TTP dealer, each on its own host, observed.

Five hosts on a private bridge (tests/helpers/netns.py): hospitals 0..2 on hosts 0..2, the TTP
dealer on host 3, the rendezvous store on host 4 (``crypten-fl node --rendezvous-server``, as in
a multi-machine deployment). The hospitals and the dealer are ``python -m fedtrain.party``
processes with the environment ``crypten-fl node`` gives them (fedtrain/run/node.py), running
the real training job wrapped to save ground truth (tests/helpers/attack_jobs.py). A sniffer on
the bridge records every frame (tests/helpers/capture.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from safetensors.torch import load_file

from helpers.capture import Frame, read_pcap, sniffing
from helpers.federation import TINY_MODEL, small_federation
from helpers.netns import INTERFACE, VirtualNetwork

HOSPITALS = 3
TTP_HOST, STORE_HOST = HOSPITALS, HOSPITALS + 1
PORT = 29500
JOB = "helpers.attack_jobs:run"
TESTS = Path(__file__).resolve().parent.parent
#: one round of split learning with the tiny model (the server part is one encrypted Linear)
RUN = {"strategy": "split", "rounds": 1, "seed": 3, **TINY_MODEL}


@dataclass
class ObservedRun:
    """What the run left: the capture (the attacker's input) and each party's ground truth."""

    frames: list[Frame]
    store: tuple[str, int]
    hosts: list[str]  # address of each party's host: hospitals by rank, then the TTP
    workdirs: list[Path]

    def step_record(self, rank: int, step: int) -> dict[str, torch.Tensor]:
        """What hospital ``rank`` saved at its ``step``-th server step (see attack_jobs.py)."""
        return load_file(str(self.workdirs[rank] / f"cut_{step}.safetensors"))

    def activations(self, rank: int, step: int) -> torch.Tensor:
        """Hospital ``rank``'s cut-layer activations of its ``step``-th server step."""
        return self.step_record(rank, step)["h"]

    def seeds(self, rank: int) -> dict[str, int]:
        return json.loads((self.workdirs[rank] / "seeds.json").read_text())


def _env(rank: int, rendezvous: str, kits: Path | None, address: str) -> dict[str, str]:
    """What ``crypten-fl node`` sets for a party (fedtrain/run/node.py ``_environment``)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "RENDEZVOUS", "CRYPTEN_FL_KIT", "CRYPTEN_FL_STORE")}
    env.update(RANK=str(rank), WORLD_SIZE=str(HOSPITALS), RENDEZVOUS=rendezvous,
               DISTRIBUTED_BACKEND="gloo", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]))
    if kits is None:
        env.update(CRYPTEN_FL_TRANSPORT="tcp", GLOO_SOCKET_IFNAME=INTERFACE)
    else:
        member = "ttp" if rank == HOSPITALS else f"hospital_{rank}"
        env.update(CRYPTEN_FL_TRANSPORT="tls", CRYPTEN_FL_KIT=str(kits / member),
                   CRYPTEN_FL_LISTEN_HOST=address, CRYPTEN_FL_STORE="external")
    return env


def _store_server(net: VirtualNetwork, root: Path, kits: Path, rendezvous: str,
                  timeout: float) -> subprocess.Popen:
    """The federation's rendezvous member: ``crypten-fl node --kit KITS/rendezvous``."""
    argv = [sys.executable, "-m", "crypten_fl.cli.app", "node", "--kit", str(kits / "rendezvous"),
            "--rendezvous-server", "--rendezvous", rendezvous, "--out", str(root / "store"),
            "--timeout", str(timeout)]
    return net.popen(STORE_HOST, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _party_argv(rank: int, workdir: Path, config: TrainConfig, fed: Path) -> list[str]:
    argv = [sys.executable, "-m", "crypten_fl.fedtrain.party", "--workdir", str(workdir),
            "--timeout", str(config.timeout)]
    if rank == HOSPITALS:
        return [*argv, "--ttp-server"]
    spec = {"config": config.to_json(), "run_dir": str(workdir), "resume_round": 0,
            "n_hospitals": HOSPITALS, "hospital_dirs": [str(fed / f"hospital_{rank}")],
            "hospital": rank, "min_members": None, "rejoin": False}  # as run_node writes it
    (workdir / "spec.json").write_text(json.dumps(spec))
    return [*argv, "--job", JOB, "--spec", str(workdir / "spec.json"), "--ttp"]


def observe_split_run(net: VirtualNetwork, root: Path, secure: bool,
                      timeout: float = 120.0) -> ObservedRun:
    """Run the federation on ``net`` (5 hosts) under capture; every process must succeed.

    Insecure: hospital 0 hosts the plaintext TCPStore (``crypten-fl node --insecure-transport``
    without a rendezvous node). Secure: a throw-away federation's kits (as the launcher
    provisions them) and its rendezvous member on host 4 hosts the TLS store."""
    fed = small_federation(root / "data", n_patients=120, seed=5, hospitals=HOSPITALS)
    config = TrainConfig(fed=str(fed), insecure_transport=not secure, **RUN)
    strategies.validate(config)
    kits = None
    if secure:
        from crypten_fl.fedtrain.identity import provision_ephemeral

        (root / "kits").mkdir(mode=0o700)
        kits = Path(provision_ephemeral(root / "kits", HOSPITALS, ttp=True))
    store = (net.hosts[STORE_HOST if secure else 0].address, PORT)
    rendezvous = f"tcp://{store[0]}:{store[1]}"
    workdirs = [root / f"party_{r}" for r in range(HOSPITALS + 1)]
    logs, procs = [], []
    with sniffing(net, root / "capture.pcap"):
        server = _store_server(net, root, kits, rendezvous, timeout) if kits else None
        try:
            for rank, workdir in enumerate(workdirs):
                workdir.mkdir(parents=True)
                logs.append(open(workdir / "party.log", "w"))  # noqa: SIM115  (closed below)
                env = _env(rank, rendezvous, kits, net.hosts[rank].address)
                procs.append(net.popen(rank, _party_argv(rank, workdir, config, fed), env=env,
                                       stdout=logs[-1], stderr=subprocess.STDOUT))
            codes = [p.wait(timeout=timeout) for p in procs]
        finally:
            for log in logs:
                log.close()
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
    failed = {r: (workdirs[r] / "party.log").read_text()[-2000:]
              for r, code in enumerate(codes) if code != 0}
    assert not failed, failed
    return ObservedRun(read_pcap(root / "capture.pcap"), store,
                       [net.hosts[r].address for r in range(HOSPITALS + 1)], workdirs)
