"""`crypten-fl provision`: a federation's CA and one identity kit per member; rotation of a kit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crypten_fl.cli.common import console, make_table, run_or_exit
from crypten_fl.common.errors import UserError
from rich.markup import escape

if TYPE_CHECKING:
    from crypten_fl.fedtrain.identity import Federation

DEFAULT_DAYS = 365


def _refuse_with_rotate(given: dict[str, bool]) -> None:
    for option, present in given.items():
        if present:
            raise UserError(f"{option}: not used with --rotate (the federation keeps its members, "
                            "name, CA and expiry)")


def command(
    out: Annotated[Path, typer.Option(
        help="KITS directory to create (must not exist: kits are never overwritten). Gets ca/ "
             "(the operator's CA key: never send it) and one kit directory per member.",
        show_default=False)],
    hospitals: Annotated[int | None, typer.Option(
        help="Number of hospitals N: kits hospital_0 .. hospital_<N-1> (CrypTen ranks 0..N-1). "
             "Required unless --rotate.", show_default=False)] = None,
    ttp: Annotated[bool, typer.Option(
        "--ttp", help="Add a ttp kit: the dealer of Beaver triples (CrypTen's TTP provider), "
                      "rank N. Default: no ttp kit.")] = False,
    rendezvous: Annotated[str | None, typer.Option(
        metavar="HOST:PORT",
        help="Add a rendezvous kit for a machine of its own hosting the rendezvous store at "
             "HOST:PORT. Default: hospital_0 hosts the store, its address is given at run "
             "time.", show_default=False)] = None,
    name: Annotated[str | None, typer.Option(
        help="Federation id (1-63 lowercase letters, digits, '-'). Default: 'fed-' and 16 "
             "random hex digits.", show_default=False)] = None,
    days: Annotated[int | None, typer.Option(
        help=f"Days the CA and every certificate stay valid (1-3650). Default: {DEFAULT_DAYS}.",
        show_default=False)] = None,
    rotate: Annotated[str | None, typer.Option(
        metavar="MEMBER",
        help="Replace the key and certificate of MEMBER (e.g. hospital_2) of the federation in "
             "--from; writes every kit, with the new federation.json, to --out.",
        show_default=False)] = None,
    source: Annotated[Path | None, typer.Option(
        "--from", metavar="KITS",
        help="With --rotate: the KITS directory of `crypten-fl provision` (needs its ca/). "
             "Only read, never changed.", show_default=False)] = None,
) -> None:
    """Create a federation: an ECDSA P-256 CA and one identity kit per member.

    Each kit (member.key, member.crt, ca.crt, federation.json) goes to one site.

    ca/ (the CA key) stays with the operator. Keys come from the OS CSPRNG: there is no --seed.

    --rotate MEMBER --from KITS issues MEMBER a new key and certificate (docs/provision.md).
    """
    from crypten_fl.fedtrain.identity import provision as provision_kits
    from crypten_fl.fedtrain.identity import rotate as rotate_kit

    def go() -> Federation:
        if rotate is not None:
            _refuse_with_rotate({"--hospitals": hospitals is not None, "--ttp": ttp,
                                 "--rendezvous": rendezvous is not None,
                                 "--name": name is not None, "--days": days is not None})
            if source is None:
                raise UserError("--rotate: give the federation's KITS directory with --from")
            return rotate_kit(source, rotate, out)
        if source is not None:
            raise UserError("--from: only used with --rotate MEMBER")
        if hospitals is None:
            raise UserError("--hospitals: give the number of hospitals (or --rotate MEMBER "
                            "--from KITS)")
        return provision_kits(out, hospitals, ttp=ttp, rendezvous=rendezvous,
                              days=DEFAULT_DAYS if days is None else days, name=name)

    federation = run_or_exit(go)
    render(federation, out, rotate)


def _destination(federation: Federation, member: str) -> str:
    if member == "ttp":
        return "the machine of the triple dealer (TTP)"
    if member == "rendezvous":
        return f"the machine at {federation.rendezvous_address} (rendezvous store)"
    return f"the site of {member}"


def render(federation: Federation, out: Path, rotated: str | None) -> None:
    """The members' table, then where each directory goes."""
    rows = [[m.name, m.role, "" if m.rank is None else str(m.rank), m.fingerprint[:16] + "…",
             str(out / m.name)] for m in federation.members]
    title = (f"federation {federation.id}, revision {federation.revision}, expires "
             f"{federation.expires_utc}")
    console.print(make_table(escape(title), ["member", "role", "rank", "fingerprint (sha256)",
                                             "kit"], rows))
    if rotated is None:
        for m in federation.members:
            console.print(f"send [bold]{escape(str(out / m.name))}/[/] to "
                          f"{escape(_destination(federation, m.name))}", highlight=False)
    else:
        console.print(f"send [bold]{escape(str(out / rotated))}/[/] to "
                      f"{escape(_destination(federation, rotated))}; every other site replaces "
                      "only its federation.json with the one in its kit here (its key is "
                      f"unchanged). The old certificate of {escape(rotated)} is refused by each "
                      f"site running revision {federation.revision}.", highlight=False)
    if federation.rendezvous_address is None:
        console.print("hospital_0 hosts the rendezvous store; its address is given at run time.",
                      highlight=False)
    console.print(f"keep [bold]{escape(str(out / 'ca'))}/[/] (the CA key) with the operator: "
                  "never send it to a site.", highlight=False)
