"""Names in a federation: federation ids, member names and roles, the rendezvous address."""

from __future__ import annotations

import ipaddress
import re
import secrets

from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity.certificates import FEDERATION_ID

HOSPITAL, TTP, RENDEZVOUS = "hospital", "ttp", "rendezvous"
ROLES = (HOSPITAL, TTP, RENDEZVOUS)
MAX_HOSPITALS = 256
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def hospital_name(rank: int) -> str:
    """The member name of the hospital of ``rank``."""
    return f"hospital_{rank}"


def new_federation_id() -> str:
    """'fed-' and 16 random hex digits."""
    return f"fed-{secrets.token_hex(8)}"


def check_federation_id(text: str, option: str = "--name") -> str:
    """``text`` if it is a valid federation id, else UserError."""
    if not FEDERATION_ID.fullmatch(text):
        raise UserError(f"{option} {text!r}: a federation id is 1-63 lowercase letters, digits "
                        "or '-', starting and ending with a letter or digit")
    return text


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def check_address(text: str, option: str = "--rendezvous") -> str:
    """``text`` if it is HOST:PORT (an IPv6 host in brackets), else UserError."""
    host, sep, port = text.rpartition(":")
    if not (sep and _valid_host(host) and port.isascii() and port.isdigit()
            and 1 <= int(port) <= 65535):
        raise UserError(f"{option} {text!r}: expected HOST:PORT (a host name or IP address, "
                        "IPv6 in brackets, and a port 1-65535)")
    return text


def check_hospitals(hospitals: int, option: str = "--hospitals") -> int:
    """``hospitals`` if it is a supported number of hospitals, else UserError."""
    if not 1 <= hospitals <= MAX_HOSPITALS:
        raise UserError(f"{option} {hospitals}: must be in 1..{MAX_HOSPITALS}")
    return hospitals


def check_days(days: int, option: str = "--days") -> int:
    """``days`` if it is a supported validity (1 day to 10 years), else UserError."""
    if not 1 <= days <= 3650:
        raise UserError(f"{option} {days}: must be in 1..3650")
    return days


def member_plan(hospitals: int, ttp: bool, rendezvous: bool) -> list[tuple[str, str, int | None]]:
    """(name, role, rank) of every member: hospitals 0..N-1, the TTP at rank N, the store host."""
    plan: list[tuple[str, str, int | None]] = [
        (hospital_name(k), HOSPITAL, k) for k in range(hospitals)]
    if ttp:
        plan.append((TTP, TTP, hospitals))
    if rendezvous:
        plan.append((RENDEZVOUS, RENDEZVOUS, None))
    return plan
