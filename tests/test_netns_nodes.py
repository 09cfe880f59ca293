"""`crypten-fl node` across hosts: each hospital in its own network namespace, joined by veth links.

Each "host" is a network namespace with its own interface on a private bridge (tests/helpers/
netns.py) and a private copy of its own hospital directory and its own federation kit; the only
way between hosts is the virtual network. A further host plays the attacker during the run
(tests/helpers/impostors.py): a self-signed certificate, another federation's kit, hospital 2's
stolen kit claiming rank 1, and plain TCP clients hammering the rendezvous port. Every attempt is
refused, the honest nodes name each refused address and reason in one line, and their model is
bit-identical to the single-host run without any attacker. Skipped with the reason where
namespaces cannot be created (no root).
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.identity import provision
from crypten_fl.fedtrain.run.node import gloo_interface
from helpers.netns import (
    INTERFACE,
    PREFIX,
    LinkShape,
    NetworkUnavailable,
    namespaces,
    skip_unless_available,
    virtual_network,
    virtual_network_or_skip,
)
from helpers.nodes import (
    HOSPITALS,
    Reference,
    assert_same_as_reference,
    launcher_reference,
    node_argv,
    wait_for_nodes,
)
from typer.testing import CliRunner

PORT = 29500  # free in a fresh namespace

#: run inside a host: wait until HOST:PORT accepts, then also try 127.0.0.1:PORT; print errnos
PROBE = """
import json, socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
def connect(address):
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex((address, port))
while connect(host) != 0 and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps({"network": connect(host), "loopback": connect("127.0.0.1")}))
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    skip_unless_available()  # before the reference run, which would be wasted
    return launcher_reference(tmp_path_factory)


def _private_home(reference: Reference, home: Path, rank: int) -> Path:
    """A host's own file system area: a copy of its hospital's directory, the config and its
    own kit (no other member's key)."""
    shutil.copytree(reference.fed / f"hospital_{rank}", home / f"hospital_{rank}")
    shutil.copy(reference.config, home / "config.json")
    shutil.copytree(reference.kits / f"hospital_{rank}", home / "kits" / f"hospital_{rank}")
    return home


def _attacker_home(reference: Reference, home: Path) -> Path:
    """What the attacker holds: the federation's public files, hospital 2's stolen kit, and a
    valid kit of another federation."""
    public = home / "public"
    public.mkdir(parents=True)
    for name in ("ca.crt", "federation.json"):
        shutil.copy(reference.kits / "hospital_0" / name, public / name)
    shutil.copytree(reference.kits / "hospital_2", home / "stolen")
    provision(home / "other", HOSPITALS, ttp=False, rendezvous=None, name="fed-other")
    return home


def test_nodes_in_separate_namespaces_equal_the_single_host_run(reference, tmp_path) -> None:
    homes = [_private_home(reference, tmp_path / f"host{r}", r) for r in range(HOSPITALS)]
    attacker = _attacker_home(reference, tmp_path / "attacker")
    outs = [home / "out" for home in homes]
    with virtual_network_or_skip(HOSPITALS + 1) as net:
        rendezvous = f"tcp://{net.hosts[0].address}:{PORT}"
        argvs = [[*node_argv(r, rendezvous, homes[r] / f"hospital_{r}",
                             homes[r] / "config.json", outs[r], kits=homes[r] / "kits"),
                  "--listen-port", str(PORT + 1)] for r in range(HOSPITALS)]
        start = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        nodes = [net.popen(r, argvs[r], **start) for r in range(HOSPITALS)]
        attack = net.popen(HOSPITALS, [
            sys.executable, "-m", "helpers.impostors", f"{net.hosts[0].address}:{PORT}",
            str(attacker / "public"), str(attacker / "stolen"), str(attacker / "other" /
                                                                   "hospital_1"),
            str(attacker), str(attacker / "outcomes.json")],
            cwd=Path(__file__).parent, **start)
        # rank 0's rendezvous listens on the virtual network; from host 1 it is not on loopback
        probe = net.run(1, [sys.executable, "-c", PROBE, net.hosts[0].address, str(PORT), "150"],
                        timeout=180)
        outputs = wait_for_nodes(nodes)
        (attacker / "stop").touch()
        attack_output = attack.communicate(timeout=60)[0]
        assert json.loads(probe.stdout) == {"network": 0, "loopback": errno.ECONNREFUSED}, probe
        crossed = [sum(net.traffic(r)) for r in range(HOSPITALS)]
    for r, output in enumerate(outputs):
        assert f"node {r} finished (traffic over {INTERFACE})" in output
    assert_same_as_reference(outs, reference)  # nothing an impostor sent reached the model
    assert (attacker / "outcomes.json").exists(), attack_output
    outcomes = json.loads((attacker / "outcomes.json").read_text())
    for attack_name in ("self-signed", "other-federation", "stolen-kit-as-rank-1",
                        "stolen-kit-writes-hospital_1s-key", "plain-tcp"):
        assert outcomes.get(attack_name), (attack_name, attack_output, outcomes)
        assert not [o for o in outcomes[attack_name] if o.startswith("accepted")], (
            attack_name, outcomes[attack_name])
    refusals = [line for line in " ".join(outputs[0].split()).split("refused a connection from ")
                if line.startswith(f"{net.hosts[HOSPITALS].address}:")]
    reasons = " | ".join(refusals)
    assert "certificate refused" in reasons or "TLS handshake failed" in reasons, outputs[0]
    assert "claims rank 1 (which is hospital_1)" in reasons, outputs[0]
    # hospital 0's link listener was where --listen-port put it
    assert any(o.startswith(f"refused: {net.hosts[0].address}:{PORT + 1}: ")
               for o in outcomes["stolen-kit-as-rank-1"]), outcomes
    assert any("hospital_2 may not write" in o for o in
               outcomes["stolen-kit-writes-hospital_1s-key"]), outcomes
    # what each party moved went over its own link to the switch (plus TLS and TCP/IP headers)
    sent = [json.loads((out / "result.json").read_text())["comm"]["crypten_bytes"]
            for out in outs]
    assert all(c >= s > 0 for c, s in zip(crossed, sent, strict=True)), (crossed, sent)
    # each node's command line names only its own host's files
    for r, argv in enumerate(argvs):
        paths = [a for a in argv if a.startswith(str(tmp_path))]
        assert paths and all(a.startswith(str(homes[r])) for a in paths)


def test_the_interface_comes_from_the_route_to_the_rendezvous() -> None:
    script = ("import json; from crypten_fl.fedtrain.run.node import gloo_interface as g\n"
              "from crypten_fl.common.errors import UserError\n"
              "try: g('tcp://10.99.0.1:1'); bad = None\n"
              "except UserError as e: bad = str(e)\n"
              "print(json.dumps([g('tcp://{0}:29500'), g('tcp://{1}:29500'),"
              " g('tcp://127.0.0.1:29500'), bad]))")
    with virtual_network_or_skip(2) as net:
        a, b = (h.address for h in net.hosts)
        done = net.run(1, [sys.executable, "-c", script.format(a, b)])
    own, other, loopback, unreachable = json.loads(done.stdout)
    assert (own, other, loopback) == (INTERFACE, INTERFACE, None), done.stderr
    assert unreachable == ("--rendezvous 'tcp://10.99.0.1:1': cannot reach 10.99.0.1 from this "
                           "machine (Network is unreachable)")


def test_an_explicit_or_configured_interface_wins(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    assert gloo_interface("tcp://127.0.0.1:29500") is None
    assert gloo_interface("file:///tmp/x") is None
    assert gloo_interface("tcp://127.0.0.1:29500", "lo") == "lo"
    with pytest.raises(UserError, match=r"^--interface nope0: no such network interface here"):
        gloo_interface("tcp://127.0.0.1:29500", "nope0")
    with pytest.raises(UserError, match=r"expected tcp://HOST:PORT"):
        gloo_interface("tcp://127.0.0.1")
    result = CliRunner().invoke(app, ["node", "--insecure-transport", "--ttp-server", "--rank",
                                      "3", "--world-size", "3",
                                      "--rendezvous", "tcp://127.0.0.1:1", "--out",
                                      str(tmp_path / "o"), "--interface", "nope0"])
    assert result.exit_code == 1 and "--interface nope0: no such network" in result.output
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    assert gloo_interface("tcp://10.99.0.1:1") == "lo"


def test_the_virtual_network_is_removed_even_after_a_failure_and_after_a_crash() -> None:
    with virtual_network_or_skip(1):
        pass
    dead = subprocess.Popen(["true"])
    dead.wait()
    crashed = f"{PREFIX}{dead.pid}-0-h0"  # as a killed earlier run would have left it
    subprocess.run(["ip", "netns", "add", crashed], check=True)
    with pytest.raises(RuntimeError, match="boom"), virtual_network(2) as net:
        names = [net.switch, *(h.namespace for h in net.hosts)]
        assert crashed not in namespaces()
        assert set(names) <= set(namespaces())
        sleeper = net.popen(1, ["sleep", "600"])
        raise RuntimeError("boom")
    assert not set(names) & set(namespaces())
    assert sleeper.returncode is not None


def test_a_shaped_link_gets_a_rate_limit_both_ways() -> None:
    with virtual_network_or_skip(1, LinkShape(rate_gbit=0.5)) as net:
        host = net.hosts[0].namespace
        shown = [subprocess.run(["tc", "-n", ns, "qdisc", "show", "dev", dev], check=True,
                                capture_output=True, text=True).stdout
                 for ns, dev in ((host, INTERFACE), (net.switch, "port0"))]
    assert all("tbf" in s and "rate 500Mbit" in s for s in shown), shown
    try:  # a delay needs netem, which some kernels lack: then the reason is named
        with virtual_network(1, LinkShape(delay_ms=1)):
            pass
    except NetworkUnavailable as err:
        assert "netem" in str(err)
