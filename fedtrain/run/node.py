"""One hospital's party on its own machine: the same process code the local launcher starts.

Each member runs ``crypten-fl node --kit KITS/<member>`` with the kit ``crypten-fl provision``
made for it: the kit says who the node is (hospital k, the TTP dealer, or the rendezvous host),
how many hospitals there are and where the rendezvous store is, and every byte the node exchanges
goes over the federation's mutually authenticated TLS channels (fedtrain/transport). A hospital
node also gets its own data directory and the shared run configuration; its outputs
(checkpoints, model files, result.json, events.jsonl) go to its own ``--out`` directory.
``--rank``, ``--world-size`` and ``--rendezvous`` may still be given: they must agree with the kit
(the rendezvous address may override the kit's). With ``--insecure-transport`` (plain gloo, no
kit) they are required instead.

A node listens for its links on the address of the interface it reaches the rendezvous through
(or ``--interface``): where the hostname resolves to 127.0.0.1 or 127.0.1.1 (common), gloo would
tell peers on other machines to connect to their own loopback; the same choice sets
``GLOO_SOCKET_IFNAME`` for the insecure transport.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import check_replaceable, write_marker
from crypten_fl.common.pathguard import Reads, check_disjoint
from crypten_fl.fedtrain import party, strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import JOB
from crypten_fl.fedtrain.run.init_from import resolve_init_from
from crypten_fl.fedtrain.secure import group
from crypten_fl.fedtrain.transport import join
from crypten_fl.mimic_etl.hospital_data import read_hospital_manifest
from crypten_fl.mimic_etl.schema import manifest_schema


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


def _route(rendezvous: str, interface: str | None) -> tuple[str | None, str | None]:
    """(interface name, this machine's address on it) for the traffic to the other parties."""
    iface = gloo_interface(rendezvous, interface)
    if iface is None:
        return None, None
    addresses = [a.address for a in psutil.net_if_addrs().get(iface, [])
                 if a.family == socket.AF_INET]
    return iface, (addresses[0] if addresses else None)


def _environment(identity: NodeIdentity, interface: str | None, listen_port: int = 0
                 ) -> str | None:
    """Set the party environment of this node; returns the interface its traffic uses."""
    iface, address = _route(identity.rendezvous, interface)
    os.environ.update(RANK=str(identity.rank), WORLD_SIZE=str(identity.world_size),
                      RENDEZVOUS=identity.rendezvous, DISTRIBUTED_BACKEND="gloo")
    if identity.external_store:
        os.environ["CRYPTEN_FL_STORE"] = "external"
    if identity.kit is None:
        os.environ[join.TRANSPORT_ENV] = "tcp"
        if iface is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = iface
        return iface
    os.environ.update({join.TRANSPORT_ENV: "tls", join.KIT_ENV: str(identity.kit),
                       join.LISTEN_PORT_ENV: str(listen_port)})
    if address is not None:  # listen where the other hospitals can reach this machine
        os.environ[join.LISTEN_HOST_ENV] = address
    return iface


def serve_rendezvous(identity: NodeIdentity, timeout: float = 60.0,
                     on_refused: Callable[[dict[str, Any]], None] | None = None
                     ) -> dict[str, Any]:
    """Host the rendezvous store until the hospitals report the run over.

    With ``--min-hospitals`` this keeps the membership records on a machine of its own, so the
    group can re-form whichever hospital drops out (hosted by rank 0, it cannot outlive rank 0).
    The store holds membership and link addresses, never data; with a kit, only members of the
    federation may connect, each writing only its own keys (fedtrain/transport/store.py).
    """
    if identity.kit is None:
        os.environ[join.TRANSPORT_ENV] = "tcp"
        try:
            store = group.connect_store(identity.rendezvous, 0, timeout, host_it=True)
        except (ValueError, RuntimeError) as err:  # not tcp://HOST:PORT, or cannot listen there
            raise UserError(f"--rendezvous {identity.rendezvous}: {err}") from None
        finished: Callable[[], bool] = lambda: store.check(["finished"])  # noqa: E731
    else:
        from crypten_fl.fedtrain.identity import load_kit
        from crypten_fl.fedtrain.transport.store import StoreServer

        host, port = join.parse_rendezvous(identity.rendezvous)

        def refused(r: Any) -> None:
            if on_refused is not None:
                on_refused({"event": "refused", "peer": r.address, "reason": r.reason})

        try:
            server = StoreServer(join.credentials_from_kit(load_kit(identity.kit)),
                                 join.bind_address(host), port, on_refused=refused)
        except OSError as err:
            raise UserError(f"--rendezvous {identity.rendezvous}: cannot listen there "
                            f"({err.strerror or err})") from None
        finished = lambda: server.local_check("finished")  # noqa: E731
    while not finished():
        time.sleep(1.0)
    time.sleep(timeout)  # the hospitals' final evaluation may still need to re-form
    return {"rendezvous": identity.rendezvous, "finished": True}


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


@dataclass(frozen=True)
class NodeIdentity:
    """Who this node is: from its kit, with the options (which must agree with it).

    ``role`` is hospital, ttp or rendezvous; ``rank`` the CrypTen rank (the TTP's is the number
    of hospitals); ``world_size`` the number of hospitals; ``kit`` None with
    ``--insecure-transport``; ``external_store``: the store is hosted by a rendezvous node."""

    role: str
    rank: int
    world_size: int
    rendezvous: str
    external_store: bool
    kit: Path | None


def resolve_identity(*, kit: Path | None, rank: int | None, world_size: int | None,
                     rendezvous: str | None, ttp_server: bool, rendezvous_server: bool,
                     external_rendezvous: bool, insecure: bool) -> NodeIdentity:
    """The node's identity from ``--kit`` (or, with ``--insecure-transport``, the options)."""
    if insecure:
        if kit is not None:
            raise UserError("--kit and --insecure-transport exclude each other (the kit is for "
                            "the authenticated channels)")
        missing = [o for o, v in (("--rank", rank), ("--world-size", world_size),
                                  ("--rendezvous", rendezvous)) if v is None]
        if missing and not rendezvous_server:
            raise UserError(f"{', '.join(missing)}: required with --insecure-transport "
                            "(without it they come from --kit)")
        role = "rendezvous" if rendezvous_server else "ttp" if ttp_server else "hospital"
        size = world_size or 0
        return _checked(NodeIdentity(role, size if ttp_server else rank or 0, size,
                                     rendezvous or "", external_rendezvous, None))
    if kit is None:
        raise UserError("--kit: required — a node is identified by its federation kit "
                        "(crypten-fl provision), or run with --insecure-transport")
    from crypten_fl.fedtrain.identity import load_kit

    loaded = load_kit(Path(kit))
    member, federation = loaded.member, loaded.federation
    hospitals = len(federation.hospitals())
    for flag, role in ((ttp_server, "ttp"), (rendezvous_server, "rendezvous")):
        if flag and member.role != role:
            raise UserError(f"--{role}-server: --kit {kit} is {member.name}, not the {role}")
    if member.role == "hospital" and rank is not None and rank != member.rank:
        raise UserError(f"--rank {rank}: --kit {kit} is {member.name} (rank {member.rank})")
    if world_size is not None and world_size != hospitals:
        raise UserError(f"--world-size {world_size}: the federation of --kit {kit} has "
                        f"{hospitals} hospitals")
    address = rendezvous or (f"tcp://{federation.rendezvous_address}"
                             if federation.rendezvous_address else None)
    if address is None:
        raise UserError("--rendezvous: required (the federation was provisioned without a "
                        "rendezvous address)")
    external = federation.rendezvous_host != "hospital_0"
    if external_rendezvous and not external:
        raise UserError("--external-rendezvous: the federation of --kit has no rendezvous "
                        "member; its store is hosted by hospital_0")
    node_rank = hospitals if member.role == "ttp" else member.rank or 0
    return _checked(NodeIdentity(member.role, node_rank, hospitals, address, external,
                                 Path(kit)))


def _checked(identity: NodeIdentity) -> NodeIdentity:
    if identity.role == "rendezvous":
        _rendezvous_host(identity.rendezvous)
        return identity
    if identity.world_size < 1:
        raise UserError(f"--world-size {identity.world_size}: must be at least 1")
    if not 0 <= identity.rank <= identity.world_size:
        raise UserError(f"--rank {identity.rank}: must be in 0..{identity.world_size - 1} "
                        f"(world size {identity.world_size})")
    if identity.role == "hospital" and identity.rank >= identity.world_size:
        raise UserError(f"--rank {identity.rank}: must be below --world-size "
                        f"{identity.world_size}")
    if not identity.rendezvous.startswith(("tcp://", "env://", "file://")) or (
            identity.kit is not None and not identity.rendezvous.startswith("tcp://")):
        raise UserError(f"--rendezvous {identity.rendezvous!r}: expected tcp://HOST:PORT"
                        + ("" if identity.kit is not None else " or env://"))
    return identity


def run_node(identity: NodeIdentity, *, data: Path | None, run_config: Path | None, out: Path,
             resume_round: int = 0, timeout: float = 60.0, threads: int = 1,
             interface: str | None = None, rejoin: bool = False,
             listen_port: int = 0, init_from: Path | None = None) -> dict[str, Any]:
    """Run this machine's party to the end.

    Returns its result (see fedtrain/run/hospital.py) with ``gloo_interface``, the network
    interface its traffic used (None: the default route, the hostname's address or loopback).
    ``rejoin``: this hospital dropped out of a running group (with ``--min-hospitals``) and asks
    to be taken back at the next round, from its own latest checkpoint in ``out``.
    ``init_from``: where this machine's copy of the run's pretrained model is (default: the
    config's ``init_from``); its weights must have the SHA-256 the config records.
    """
    out = Path(out)
    if not (0 < timeout <= 86_400):
        raise UserError(f"--timeout {timeout}: must be a number of seconds in (0, 86400]")
    if resume_round < 0:
        raise UserError(f"--resume-round {resume_round}: must be 0 or more")
    kit_reads = {"--kit": [identity.kit]} if identity.kit is not None else {}
    if identity.role == "ttp":  # the dealer of Beaver triples for split/vertical
        iface = _environment(identity, interface, listen_port)
        prepare_node_dir(out, kit_reads)
        code = party.main(["--workdir", str(out), "--ttp-server", "--timeout", str(timeout)])
        return {"ttp": True, "exit_code": code, "gloo_interface": iface}
    if data is None or run_config is None:
        raise UserError("--data and --run-config are required (except for the TTP dealer)")
    reads = {"--data": [Path(data)], "--run-config": [Path(run_config)], **kit_reads}
    if init_from is not None:
        reads["--init-from"] = [Path(init_from)]
    check_node_dir(out, reads)
    manifest = read_hospital_manifest(Path(data))  # fails early with a clear message
    config = TrainConfig.load(Path(run_config))
    try:
        strategy = strategies.get(strategies.validate(config).strategy)
    except UserError as err:
        raise UserError(f"--run-config {run_config}: {err}") from None
    if config.init_from is not None and config.init_from_sha256 is None:
        raise UserError(f"--run-config {run_config}: init_from without init_from_sha256 (the "
                        "hash every hospital checks its copy against; `crypten-fl train` writes "
                        "both)")
    model_copy = Path(init_from) if init_from is not None else None
    resolve_init_from(config, [manifest_schema(manifest)], model_copy,
                      "--init-from" if init_from is not None else "init_from of --run-config")
    if config.insecure_transport != (identity.kit is None):
        raise UserError(f"--run-config {run_config}: the run is configured "
                        + ("with" if config.insecure_transport else "without")
                        + " insecure_transport; every node must agree (--insecure-transport)")
    if rejoin and config.min_hospitals is None:
        raise UserError("--rejoin: the run's config has no min_hospitals, so its group does not "
                        "take hospitals back")
    iface = _environment(identity, interface, listen_port)
    prepare_node_dir(out, reads)
    rank, world_size = identity.rank, identity.world_size
    spec = {"config": config.to_json(), "run_dir": str(out), "resume_round": resume_round,
            "n_hospitals": world_size, "hospital_dirs": [str(data)], "hospital": rank,
            "min_members": config.min_hospitals, "rejoin": rejoin,
            "init_from": None if init_from is None else str(Path(init_from).resolve())}
    (out / "spec.json").write_text(json.dumps(spec))
    argv = ["--job", JOB, "--spec", str(out / "spec.json"), "--workdir", str(out),
            "--timeout", str(timeout), "--threads", str(threads)]
    if strategy.needs_ttp:
        argv.append("--ttp")
    if party.main(argv) != 0:
        report = json.loads((out / "error.json").read_text())
        error = report["message"]
        if report.get("user"):  # e.g. the schemas differ: the message says it all
            raise UserError(f"hospital {rank} stopped: {error} (outputs in {out})")
        if "connectFullMesh" in error:  # the parties' gloo listeners could not reach each other
            error += (f"; is every peer reachable over {iface or 'the hostname address'} "
                      "(--interface, open ports: docs/deployment.md)?")
        raise UserError(f"hospital {rank} failed: {error} (log above; outputs in {out})")
    return {**json.loads((out / "result.json").read_text()), "gloo_interface": iface}
