"""`crypten-fl node`: run one member of a federation (a hospital, the TTP, the rendezvous)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, run_or_exit
from crypten_fl.cli.train import refusal_line, render_test_metrics, warn_insecure


def print_refusal(event: dict[str, str]) -> None:
    console.print(refusal_line(event), highlight=False)


def command(
    out: Annotated[Path, typer.Option(help="This node's output directory (checkpoints, models).")],
    kit: Annotated[Path | None, typer.Option(
        help="This member's kit, KITS/<member> from `crypten-fl provision`: it says who the node "
             "is (hospital_<k>, ttp or rendezvous), the number of hospitals and the rendezvous "
             "address. Required unless --insecure-transport.")] = None,
    data: Annotated[Path | None, typer.Option(
        help="This hospital's own directory, FED/hospital_<rank>.")] = None,
    run_config: Annotated[Path | None, typer.Option(
        help="The run's config.json (the same file at every hospital).")] = None,
    rank: Annotated[int | None, typer.Option(
        help="This hospital's rank; default: the kit's (must agree with it).")] = None,
    world_size: Annotated[int | None, typer.Option(
        help="Number of hospitals; default: the kit's federation (must agree with it).")] = None,
    rendezvous: Annotated[str | None, typer.Option(
        help="tcp://HOST:PORT of the rendezvous store; default: the address in the kit's "
             "federation.json (this option overrides it).")] = None,
    resume_round: Annotated[int, typer.Option(
        help="Continue after this completed round (every node must give the same).")] = 0,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for a silent peer before stopping.")] = 60.0,
    ttp_server: Annotated[bool, typer.Option(
        help="Run the TTP dealer of Beaver triples (split/vertical). With a kit, implied by the "
             "ttp kit; without one (--insecure-transport), rank = --world-size.",
    )] = False,
    interface: Annotated[str | None, typer.Option(
        help="Network interface for the traffic between parties. Default: the interface of the "
             "route to the rendezvous host (or GLOO_SOCKET_IFNAME with --insecure-transport).",
    )] = None,
    listen_port: Annotated[int, typer.Option(
        help="TCP port of this node's link listener, where the other members connect (with a "
             "kit). 0: any free port, chosen by the kernel; set one to open a single port in "
             "the firewall (docs/deployment.md).", min=0, max=65535)] = 0,
    rejoin: Annotated[bool, typer.Option(
        help="This hospital dropped out of a running group (run config with min_hospitals): "
             "ask to be taken back at the next round, from its latest checkpoint in --out.",
    )] = False,
    rendezvous_server: Annotated[bool, typer.Option(
        help="Only host the rendezvous store (membership records and addresses, never data) "
             "until the run is over; with a kit, implied by the rendezvous kit. With "
             "min_hospitals the group can then re-form whichever hospital drops out.",
    )] = False,
    external_rendezvous: Annotated[bool, typer.Option(
        help="--insecure-transport only: the store is hosted by a `--rendezvous-server` node, "
             "not by rank 0 (with a kit this follows from the federation).",
    )] = False,
    insecure_transport: opt.InsecureTransport = False,
    init_from: Annotated[Path | None, typer.Option(
        help="Where this machine's copy of the run's pretrained model is, if the run config has "
             "init_from (`train --init-from`); its weights must have the SHA-256 the config "
             "records. Default: the config's init_from path.")] = None,
) -> None:
    """Run one member of a federation on this machine (see docs/deployment.md)."""
    from crypten_fl.fedtrain.run.node import resolve_identity, run_node, serve_rendezvous

    identity = run_or_exit(lambda: resolve_identity(
        kit=kit, rank=rank, world_size=world_size, rendezvous=rendezvous, ttp_server=ttp_server,
        rendezvous_server=rendezvous_server, external_rendezvous=external_rendezvous,
        insecure=insecure_transport))
    if insecure_transport:
        warn_insecure()
    from crypten_fl.fedtrain import party

    party.observe_refusals(print_refusal)
    if identity.role == "rendezvous":
        run_or_exit(lambda: serve_rendezvous(identity, timeout, on_refused=print_refusal))
        console.print(f"rendezvous server at {identity.rendezvous}: the run is over")
        return
    result = run_or_exit(lambda: run_node(
        identity, data=data, run_config=run_config, out=out, resume_round=resume_round,
        timeout=timeout, interface=interface, rejoin=rejoin, listen_port=listen_port,
        init_from=init_from))
    if "test" in result:
        render_test_metrics({"overall": result["overall"], "per_hospital": result["test"]})
    network = result["gloo_interface"] or "the default route (hostname or loopback)"
    who = "TTP dealer" if identity.role == "ttp" else f"node {identity.rank}"
    console.print(f"{who} finished (traffic over {network}); outputs in [bold]{out}[/]")
