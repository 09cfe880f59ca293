"""How a party process joins its federation: kit → credentials → secure backend and store.

The launcher (or ``crypten-fl node``) tells a party process how to talk to the others through
its environment:

- ``CRYPTEN_FL_TRANSPORT``: ``tls`` (the default: every byte over the federation's authenticated,
  encrypted links) or ``tcp`` (gloo and a plaintext TCPStore, only with ``--insecure-transport``);
- ``CRYPTEN_FL_KIT``: the directory of this member's kit (``crypten-fl provision``);
- ``CRYPTEN_FL_LISTEN_HOST`` / ``CRYPTEN_FL_LISTEN_PORT`` / ``CRYPTEN_FL_ADVERTISE``: where its link
  listener binds (default 127.0.0.1, any port) and the address it tells the others.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch.distributed as dist
from crypten_fl.fedtrain.transport import process_group
from crypten_fl.fedtrain.transport.channels import Credentials, PeerRefused
from crypten_fl.fedtrain.transport.store import StoreServer, TlsStore

if TYPE_CHECKING:
    from crypten_fl.fedtrain.identity import Kit

TRANSPORT_ENV, KIT_ENV = "CRYPTEN_FL_TRANSPORT", "CRYPTEN_FL_KIT"
LISTEN_HOST_ENV, LISTEN_PORT_ENV, ADVERTISE_ENV = (
    "CRYPTEN_FL_LISTEN_HOST", "CRYPTEN_FL_LISTEN_PORT", "CRYPTEN_FL_ADVERTISE")

_kit: Kit | None = None
_credentials: Credentials | None = None
_server: StoreServer | None = None
_on_refused: Callable[[PeerRefused], None] | None = None


def secure() -> bool:
    """Whether this process uses the authenticated transport (anything but an explicit tcp)."""
    return os.environ.get(TRANSPORT_ENV, "tls") != "tcp"


def credentials_from_kit(kit: Kit) -> Credentials:
    """The TLS credentials of a kit; peers are identified against its federation."""
    federation = kit.federation
    return Credentials(me=kit.member.name, federation_id=federation.id, cert=kit.cert_path,
                       key=kit.key_path, ca=kit.ca_path,
                       identify=lambda der: federation.identify(der).name,
                       federation_digest=federation.digest)


def roster(world_size: int, ttp: bool, members: list[int] | None = None) -> list[str]:
    """Member name of each global rank: the hospitals (by identity) and the TTP dealer last."""
    hospitals = members if members is not None else list(range(world_size))
    return [f"hospital_{h}" for h in hospitals] + (["ttp"] if ttp else [])


def join(on_refused: Callable[[PeerRefused], None] | None = None,
         names: list[str] | None = None) -> Kit:
    """Load this process's kit and make ``torch.distributed`` use the secure backend."""
    global _kit, _credentials, _on_refused
    _on_refused = on_refused
    path = os.environ.get(KIT_ENV)
    if not path:
        raise RuntimeError(f"{KIT_ENV} is not set: a party needs its federation kit "
                           "(or --insecure-transport)")
    from crypten_fl.fedtrain.identity import load_kit

    _kit = load_kit(Path(path))
    _credentials = credentials_from_kit(_kit)
    process_group.configure(process_group.Settings(
        _credentials, list(names or []),
        listen_host=os.environ.get(LISTEN_HOST_ENV, "127.0.0.1"),
        advertise=os.environ.get(ADVERTISE_ENV) or None,
        port=int(os.environ.get(LISTEN_PORT_ENV, "0")),
        on_refused=on_refused))
    os.environ["DISTRIBUTED_BACKEND"] = process_group.BACKEND
    return _kit


def kit() -> Kit | None:
    """This process's kit (None without the secure transport)."""
    return _kit


def credentials() -> Credentials:
    if _credentials is None:
        raise RuntimeError("crypten_fl.fedtrain.transport.join.join() has not been called")
    return _credentials


def parse_rendezvous(rendezvous: str) -> tuple[str, int]:
    url = urlparse(rendezvous)
    if url.scheme != "tcp" or url.hostname is None or url.port is None:
        raise ValueError(f"rendezvous {rendezvous!r}: expected tcp://HOST:PORT")
    return url.hostname, url.port


def connect_store(rendezvous: str, timeout_s: float, host_it: bool,
                  on_refused: Callable[[PeerRefused], None] | None = None) -> dist.Store:
    """This member's client of the rendezvous store (hosting the server too, with ``host_it``).

    The client refuses a server that is not the member the federation names as the store's
    host (its rendezvous member, or hospital_0). Clients a hosted store refuses are reported to
    ``on_refused`` (default: the observer given to :func:`join`)."""
    global _server
    host, port = parse_rendezvous(rendezvous)
    creds, federation = credentials(), _kit.federation  # type: ignore[union-attr]
    if host_it:
        _server = StoreServer(creds, bind_address(host), port, on_refused or _on_refused)
    return TlsStore(creds, host, port, federation.rendezvous_host,
                    datetime.timedelta(seconds=timeout_s))


def bind_address(host: str) -> str:
    """Where to listen for the store at ``host``: that address if it is one of this machine's
    (the store is then reachable only there), else every interface."""
    import psutil

    local = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}
    if host in local or host == "localhost":
        return host
    return "::" if ":" in host else "0.0.0.0"


def shutdown() -> None:
    """Close links, listener and any store this process hosts."""
    global _server
    process_group.shutdown()
    if _server is not None:
        _server.close()
        _server = None

