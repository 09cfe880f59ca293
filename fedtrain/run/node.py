"""One hospital's party on its own machine: the same process code the local launcher starts.

Each hospital runs ``crypten-fl node`` with its rank, the world size, the torch.distributed
rendezvous (``tcp://HOST:PORT`` of rank 0's machine, or ``env://`` with MASTER_ADDR/MASTER_PORT),
its own data directory and the shared run configuration. Its outputs (checkpoints, model files,
result.json, events.jsonl) go to its own ``--out`` directory.

gloo binds each party's sockets to the address the machine's hostname resolves to, falling back
to loopback; where the hostname resolves to 127.0.0.1 or 127.0.1.1 (common), peers on other
machines are told to connect to their own loopback and the run hangs. A node therefore sets
``GLOO_SOCKET_IFNAME`` to the interface it reaches the rendezvous through (or ``--interface``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from fedtrain import party
from fedtrain.run.config import TrainConfig
from fedtrain.run.coordinator import ENCRYPTED_MODEL_STRATEGIES, JOB
from fedtrain.secure import group
from mimic_etl.errors import UserError
from mimic_etl.hospital_data import read_hospital_manifest
from mimic_etl.outdir import check_replaceable, write_marker
from mimic_etl.pathguard import Reads, check_disjoint


def _rendezvous_host(rendezvous: str) -> tuple[str, int] | None:
    if rendezvous.startswith("env://"):
        host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT", "0")
        return (host, int(port)) if host else None
    if not rendezvous.startswith("tcp://"):
        return None
    url = urlsplit(rendezvous)
    try:
        port = url.port
    except ValueError:
        port = None
    if not url.hostname or port is None:
        raise UserError(f"--rendezvous {rendezvous!r}: expected tcp://HOST:PORT")
    return url.hostname, port


def gloo_interface(rendezvous: str, requested: str | None = None) -> str | None:
    """The network interface gloo should use: ``requested``, else GLOO_SOCKET_IFNAME if set,
    else the one this machine reaches the rendezvous host through (None: loopback or unknown).
    """
    interfaces = psutil.net_if_addrs()
    if requested is not None:
        if requested not in interfaces:
            raise UserError(f"--interface {requested}: no such network interface here "
                            f"(have {', '.join(sorted(interfaces))})")
        return requested
    if os.environ.get("GLOO_SOCKET_IFNAME"):
        return os.environ["GLOO_SOCKET_IFNAME"]
    target = _rendezvous_host(rendezvous)
    if target is None:
        return None
    host, port = target
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port or 9, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:  # UDP: sends nothing
            probe.connect(address)
            local = probe.getsockname()[0]
    except OSError as err:
        raise UserError(f"--rendezvous {rendezvous!r}: cannot reach {host} from this "
                        f"machine ({err.strerror or err})") from None
    if ipaddress.ip_address(local.split("%")[0]).is_loopback:
        return None
    return next((name for name, addrs in interfaces.items()
                 if any(a.address.split("%")[0] == local for a in addrs)), None)


def _environment(rank: int, world_size: int, rendezvous: str, interface: str | None) -> None:
    if world_size < 1 or not 0 <= rank <= world_size:
        raise UserError(f"--rank {rank}: must be in 0..{world_size - 1} (world size {world_size})")
    if not rendezvous.startswith(("tcp://", "env://", "file://")):
        raise UserError(f"--rendezvous {rendezvous!r}: expected tcp://HOST:PORT or env://")
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), RENDEZVOUS=rendezvous,
                      DISTRIBUTED_BACKEND="gloo")
    if interface is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = interface


def serve_rendezvous(rendezvous: str, timeout: float = 60.0) -> dict[str, Any]:
    """Host the rendezvous store at ``tcp://HOST:PORT`` until the hospitals report the run over.

    With ``--min-hospitals`` this keeps the membership records on a machine of its own, so the
    group can re-form whichever hospital drops out (hosted by rank 0, it cannot outlive rank 0).
    The store holds membership and gloo addresses, never data.
    """
    try:
        store = group.connect_store(rendezvous, 0, timeout, host_it=True)
    except (ValueError, RuntimeError) as err:  # not tcp://HOST:PORT, or cannot listen there
        raise UserError(f"--rendezvous {rendezvous}: {err}") from None
    while not store.check(["finished"]):
        time.sleep(1.0)
    time.sleep(timeout)  # the hospitals' final evaluation may still need to re-form
    return {"rendezvous": rendezvous, "finished": True}


def check_node_dir(out: Path, reads: Reads) -> None:
    """A node's --out: disjoint from what it reads, and new, empty or an earlier node's (it is a
    working directory: a restarted, resumed or rejoining node continues in it)."""
    check_disjoint(out, "--out", reads)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        check_replaceable(out, "--out", "node")


def prepare_node_dir(out: Path, reads: Reads) -> None:
    """Check ``out`` (:func:`check_node_dir`), create it and mark it as a node's."""
    check_node_dir(out, reads)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "node")
    except OSError as err:
        raise UserError(f"--out {out}: cannot be written ({err.strerror or err})") from None


def run_node(*, rank: int, world_size: int, rendezvous: str, data: Path | None,
             run_config: Path | None, out: Path, resume_round: int = 0, timeout: float = 60.0,
             ttp_server: bool = False, threads: int = 1, interface: str | None = None,
             rejoin: bool = False, external_rendezvous: bool = False) -> dict[str, Any]:
    """Run this machine's party to the end.

    Returns its result (see fedtrain/run/hospital.py) with ``gloo_interface``, the network
    interface its traffic used (None: gloo's default, the hostname's address or loopback).
    ``rejoin``: this hospital dropped out of a running group (with ``--min-hospitals``) and asks
    to be taken back at the next round, from its own latest checkpoint in ``out``.
    ``external_rendezvous``: the store is hosted by ``crypten-fl node --rendezvous-server``.
    """
    out = Path(out)
    if not (0 < timeout <= 86_400):
        raise UserError(f"--timeout {timeout}: must be a number of seconds in (0, 86400]")
    if resume_round < 0:
        raise UserError(f"--resume-round {resume_round}: must be 0 or more")
    if external_rendezvous:
        os.environ["CRYPTEN_FL_STORE"] = "external"
    if ttp_server:  # the dealer of Beaver triples for split/vertical (rank = world size)
        iface = gloo_interface(rendezvous, interface)
        _environment(world_size, world_size, rendezvous, iface)
        prepare_node_dir(out, {})
        code = party.main(["--workdir", str(out), "--ttp-server", "--timeout", str(timeout)])
        return {"ttp": True, "exit_code": code, "gloo_interface": iface}
    if data is None or run_config is None:
        raise UserError("--data and --run-config are required (except with --ttp-server)")
    if rank >= world_size:
        raise UserError(f"--rank {rank}: must be below --world-size {world_size}")
    reads = {"--data": [Path(data)], "--run-config": [Path(run_config)]}
    check_node_dir(out, reads)
    read_hospital_manifest(Path(data))  # fails early with a clear message
    config = TrainConfig.load(Path(run_config))
    if rejoin and config.min_hospitals is None:
        raise UserError("--rejoin: the run's config has no min_hospitals, so its group does not "
                        "take hospitals back")
    iface = gloo_interface(rendezvous, interface)
    _environment(rank, world_size, rendezvous, iface)
    prepare_node_dir(out, reads)
    spec = {"config": config.to_json(), "run_dir": str(out), "resume_round": resume_round,
            "n_hospitals": world_size, "hospital_dirs": [str(data)], "hospital": rank,
            "min_members": config.min_hospitals, "rejoin": rejoin}
    (out / "spec.json").write_text(json.dumps(spec))
    argv = ["--job", JOB, "--spec", str(out / "spec.json"), "--workdir", str(out),
            "--timeout", str(timeout), "--threads", str(threads)]
    if config.strategy in ENCRYPTED_MODEL_STRATEGIES:
        argv.append("--ttp")
    if party.main(argv) != 0:
        error = json.loads((out / "error.json").read_text())["message"]
        if "connectFullMesh" in error:  # the parties' gloo listeners could not reach each other
            error += (f"; is every peer reachable over {iface or 'the hostname address'} "
                      "(--interface, open ports: docs/deployment.md)?")
        raise UserError(f"hospital {rank} failed: {error} (log above; outputs in {out})")
    return {**json.loads((out / "result.json").read_text()), "gloo_interface": iface}
