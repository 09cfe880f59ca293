"""`crypten-fl node`: run one hospital's party on its own machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, run_or_exit
from cli.train import render_test_metrics
from fedtrain.run.node import run_node, serve_rendezvous


def command(
    rank: Annotated[int, typer.Option(help="This hospital's rank (0 .. world size - 1).")],
    world_size: Annotated[int, typer.Option(help="Number of hospitals taking part.")],
    rendezvous: Annotated[str, typer.Option(
        help="torch.distributed rendezvous: tcp://HOST:PORT of rank 0's machine, or env://.")],
    out: Annotated[Path, typer.Option(help="This node's output directory (checkpoints, models).")],
    data: Annotated[Path | None, typer.Option(
        help="This hospital's own directory, FED/hospital_<rank>.")] = None,
    run_config: Annotated[Path | None, typer.Option(
        help="The run's config.json (the same file at every hospital).")] = None,
    resume_round: Annotated[int, typer.Option(
        help="Continue after this completed round (every node must give the same).")] = 0,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for a silent peer before stopping.")] = 60.0,
    ttp_server: Annotated[bool, typer.Option(
        help="Run the TTP dealer of Beaver triples instead (split/vertical; rank = world size).",
    )] = False,
    interface: Annotated[str | None, typer.Option(
        help="Network interface for the traffic between parties (sets GLOO_SOCKET_IFNAME). "
             "Default: GLOO_SOCKET_IFNAME if set, else the interface of the route to the "
             "rendezvous host.")] = None,
    rejoin: Annotated[bool, typer.Option(
        help="This hospital dropped out of a running group (run config with min_hospitals): "
             "ask to be taken back at the next round, from its latest checkpoint in --out.",
    )] = False,
    rendezvous_server: Annotated[bool, typer.Option(
        help="Only host the rendezvous store at --rendezvous (membership records and addresses, "
             "never data) until the run is over; with min_hospitals the group can then re-form "
             "whichever hospital drops out. --rank/--world-size are ignored.",
    )] = False,
    external_rendezvous: Annotated[bool, typer.Option(
        help="The rendezvous store is hosted by a `--rendezvous-server` node, not by rank 0.",
    )] = False,
) -> None:
    """Run one hospital's party on this machine (see docs/deployment.md)."""
    if rendezvous_server:
        run_or_exit(lambda: serve_rendezvous(rendezvous, timeout))
        console.print(f"rendezvous server at {rendezvous}: the run is over")
        return
    result = run_or_exit(lambda: run_node(
        rank=rank, world_size=world_size, rendezvous=rendezvous, data=data,
        run_config=run_config, out=out, resume_round=resume_round, timeout=timeout,
        ttp_server=ttp_server, interface=interface, rejoin=rejoin,
        external_rendezvous=external_rendezvous))
    if "test" in result:
        render_test_metrics({"overall": result["overall"], "per_hospital": result["test"]})
    network = result["gloo_interface"] or "gloo's default (hostname or loopback)"
    console.print(f"node {rank} finished (traffic over {network}); outputs in [bold]{out}[/]")
