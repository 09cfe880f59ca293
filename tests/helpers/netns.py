"""A private virtual network of "hosts" on one machine: network namespaces joined by a bridge.

    with virtual_network(3) as net:           # hosts 10.213.0.1 .. 10.213.0.3
        proc = net.popen(1, [sys.executable, "-c", "..."])   # runs inside host 1

Layout: a "switch" namespace holds the bridge ``br0``; host namespace k has ``lo`` up and
``eth0``, one end of a veth pair whose other end ``port<k>`` is a port of the bridge, with
address ``10.213.0.<k+1>/24`` (the machine this was written on uses 192.0.2.0/24; the hosts have
no route out of their namespaces, so the subnet cannot collide with the machine's own anyway).
Nothing is created in the caller's namespace: each veth pair is created inside its host namespace
with the peer end placed directly into the switch namespace, and deleting the namespaces deletes
every interface. Names are ``cflnet<pid>-<n>-…`` so parallel runs never collide; namespaces of a
crashed run (whose pid is gone) are deleted the next time a network is created.

Optionally every link is shaped (``LinkShape``): a rate limit in both directions (tbf) and a
one-way delay at each host's egress (netem, so host-to-host RTT = 2 x delay).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from crypten_fl.common.outdir import process_alive

PREFIX = "cflnet"
SUBNET = "10.213.0"  # /24
INTERFACE = "eth0"
_LEFTOVER = re.compile(rf"^{PREFIX}(\d+)-")
_networks = itertools.count()


class NetworkUnavailable(RuntimeError):
    """Namespaces, veth, bridges or the requested shaping cannot be set up here (says why)."""


@dataclass(frozen=True)
class LinkShape:
    """How every host's link behaves; the default is an unshaped veth.

    Attributes:
        delay_ms: one-way delay added to everything a host sends (RTT between two hosts is
            twice this); needs the kernel's netem qdisc.
        rate_gbit: the link's rate in each direction, in Gbit/s (token bucket filter).
    """

    delay_ms: float = 0.0
    rate_gbit: float | None = None

    def egress(self) -> list[str] | None:
        """``tc qdisc`` arguments for a host's own egress (None = leave the default)."""
        if self.delay_ms > 0:
            rate = ["rate", f"{self.rate_gbit}gbit"] if self.rate_gbit else []
            return ["netem", "delay", f"{self.delay_ms}ms", *rate, "limit", "100000"]
        return self.ingress()

    def ingress(self) -> list[str] | None:
        """``tc qdisc`` arguments for the switch port towards a host (its receive direction)."""
        if not self.rate_gbit:
            return None
        rate_bytes = self.rate_gbit * 1e9 / 8
        burst = max(int(rate_bytes / 1000), 64 * 1024)  # 1 ms worth, at least one GSO packet
        return ["tbf", "rate", f"{self.rate_gbit}gbit", "burst", str(burst), "latency", "100ms"]


@dataclass(frozen=True)
class Host:
    """One host: its namespace, its address on the virtual network and the interface holding it."""

    namespace: str
    address: str
    interface: str = INTERFACE


@dataclass
class VirtualNetwork:
    """The hosts of a running virtual network and the processes started in them."""

    switch: str
    hosts: list[Host]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def command(self, host: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside host ``host``'s namespace."""
        return ["ip", "netns", "exec", self.hosts[host].namespace, *argv]

    def popen(self, host: int, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` inside host ``host`` (killed at teardown if still running)."""
        process = subprocess.Popen(self.command(host, argv), **kwargs)
        self.processes.append(process)
        return process

    def run(self, host: int, argv: Sequence[str], timeout: float = 60.0
            ) -> subprocess.CompletedProcess:
        """Run ``argv`` inside host ``host`` to the end; its output as text."""
        return subprocess.run(self.command(host, argv), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def traffic(self, host: int) -> tuple[int, int]:
        """Bytes sent and received so far by host ``host`` on its link to the switch."""
        link = json.loads(_ip("-n", self.hosts[host].namespace, "-s", "-j", "link", "show",
                              INTERFACE))[0]["stats64"]
        return int(link["tx"]["bytes"]), int(link["rx"]["bytes"])


def _ip(*args: str, tool: str = "ip") -> str:
    done = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkUnavailable(f"`{tool} {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> list[str]:
    """Names of the network namespaces that exist (``ip netns list``)."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def remove_leftovers() -> list[str]:
    """Delete the namespaces of earlier runs whose process is gone; return their names."""
    stale = [ns for ns in namespaces()
             if (m := _LEFTOVER.match(ns)) and not process_alive(int(m.group(1)))]
    for ns in stale:
        with suppress(NetworkUnavailable):  # a concurrent cleanup may have won
            _ip("netns", "del", ns)
    return stale


def check_available() -> None:
    """Raise NetworkUnavailable with the reason unless namespaces, veth and bridges work here."""
    if shutil.which("ip") is None:
        raise NetworkUnavailable("iproute2's `ip` command is not installed")
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        _ip("netns", "add", probe)
    except NetworkUnavailable as err:
        raise NetworkUnavailable(f"cannot create network namespaces (needs root or "
                                 f"CAP_SYS_ADMIN + CAP_NET_ADMIN): {err}") from None
    try:
        _ip("-n", probe, "link", "add", "br0", "type", "bridge")
        _ip("-n", probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
    finally:
        with suppress(NetworkUnavailable):
            _ip("netns", "del", probe)


def _add_host(switch: str, namespace: str, index: int, shape: LinkShape) -> Host:
    _ip("netns", "add", namespace)
    _ip("-n", namespace, "link", "set", "lo", "up")
    port = f"port{index}"
    _ip("-n", namespace, "link", "add", INTERFACE, "type", "veth", "peer", "name", port,
        "netns", switch)
    _ip("-n", switch, "link", "set", port, "master", "br0", "up")
    host = Host(namespace, f"{SUBNET}.{index + 1}")
    _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", INTERFACE)
    _ip("-n", namespace, "link", "set", INTERFACE, "up")
    for ns, dev, qdisc in ((namespace, INTERFACE, shape.egress()),
                           (switch, port, shape.ingress())):
        if qdisc is None:
            continue
        try:
            _ip("-n", ns, "qdisc", "replace", "dev", dev, "root", *qdisc, tool="tc")
        except NetworkUnavailable as err:
            raise NetworkUnavailable(f"cannot shape links (does the kernel have the {qdisc[0]} "
                                     f"qdisc, sch_{qdisc[0]}?): {err}") from None
    return host


def _teardown(net: VirtualNetwork, created: list[str]) -> None:
    for process in net.processes:  # only what was started through net.popen
        if process.poll() is None:
            process.kill()
            process.wait()
    for ns in reversed(created):
        with suppress(NetworkUnavailable):
            _ip("netns", "del", ns)


@contextmanager
def virtual_network(n_hosts: int, shape: LinkShape | None = None) -> Iterator[VirtualNetwork]:
    """Create ``n_hosts`` hosts on a private bridge; delete everything on exit, even on failure.

    Raises:
        NetworkUnavailable: namespaces, veth pairs, bridges or the shaping are not available.
    """
    if not 1 <= n_hosts <= 250:
        raise ValueError(f"n_hosts {n_hosts}: must be 1..250 (one /24)")
    remove_leftovers()
    tag = f"{PREFIX}{os.getpid()}-{next(_networks)}"
    net = VirtualNetwork(f"{tag}-switch", [])
    created: list[str] = []
    try:
        _ip("netns", "add", net.switch)
        created.append(net.switch)
        _ip("-n", net.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", net.switch, "link", "set", "br0", "up")
        for k in range(n_hosts):
            created.append(f"{tag}-h{k}")
            net.hosts.append(_add_host(net.switch, created[-1], k, shape or LinkShape()))
        yield net
    finally:
        _teardown(net, created)


def skip_unless_available() -> None:
    """In a test: skip it, with the reason, where this machine cannot build virtual networks."""
    import pytest

    try:
        check_available()
    except NetworkUnavailable as err:
        pytest.skip(f"no virtual network: {err}")


@contextmanager
def virtual_network_or_skip(n_hosts: int, shape: LinkShape | None = None
                            ) -> Iterator[VirtualNetwork]:
    """``virtual_network`` in a test: skipped with the reason where this machine cannot."""
    skip_unless_available()
    with virtual_network(n_hosts, shape) as net:
        yield net
