"""`crypten-fl provision` through the CLI: the members' table and where each directory goes; one
error line (exit 1, nothing written) for every wrong combination of options."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.fedtrain.identity import Federation, load_kit
from helpers.identities import tree
from typer.testing import CliRunner

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return runner.invoke(app, ["provision", *args], env={"COLUMNS": "200"})


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_provision_prints_members_and_where_each_kit_goes(tmp_path: Path) -> None:
    out = tmp_path / "kits"
    result = invoke("--out", str(out), "--hospitals", "2", "--ttp", "--rendezvous",
                    "rdv.example.org:29500", "--name", "fed-icu", "--days", "30")
    assert result.exit_code == 0, result.output
    fed = Federation.load(out / "ca" / "federation.json")
    assert fed.id == "fed-icu" and fed.names == ["hospital_0", "hospital_1", "ttp", "rendezvous"]
    lines = _lines(result.output)
    assert lines[0] == f"federation fed-icu, revision 1, expires {fed.expires_utc}"
    for member in fed.members:
        rank = "" if member.rank is None else str(member.rank)
        row = [c.strip() for c in next(ln for ln in lines if f" {member.name} " in ln
                                       and "│" in ln).strip("│").split("│")]
        assert row == [member.name, member.role, rank, member.fingerprint[:16] + "…",
                       str(out / member.name)]
    assert lines[-5:] == [
        f"send {out}/hospital_0/ to the site of hospital_0",
        f"send {out}/hospital_1/ to the site of hospital_1",
        f"send {out}/ttp/ to the machine of the triple dealer (TTP)",
        f"send {out}/rendezvous/ to the machine at rdv.example.org:29500 (rendezvous store)",
        f"keep {out}/ca/ (the CA key) with the operator: never send it to a site.",
    ]
    assert "hospital_0 hosts" not in result.output
    assert load_kit(out / "ttp").member.rank == 2
    cert = load_kit(out / "hospital_0").member.certificate
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kits"]


def test_without_rendezvous_hospital_0_hosts_the_store(tmp_path: Path) -> None:
    result = invoke("--out", str(tmp_path / "kits"), "--hospitals", "1")
    assert result.exit_code == 0, result.output
    assert "hospital_0 hosts the rendezvous store; its address is given at run time." in (
        " ".join(_lines(result.output)))
    doc = json.loads((tmp_path / "kits" / "hospital_0" / "federation.json").read_text())
    assert re.fullmatch(r"fed-[0-9a-f]{16}", doc["federation_id"])
    assert doc["rendezvous"] == {"address": None, "host": "hospital_0"}


def test_rotate_through_the_cli(tmp_path: Path) -> None:
    kits, new = tmp_path / "kits", tmp_path / "new"
    assert invoke("--out", str(kits), "--hospitals", "3").exit_code == 0
    before = tree(kits)
    result = invoke("--rotate", "hospital_1", "--from", str(kits), "--out", str(new))
    assert result.exit_code == 0, result.output
    text = " ".join(_lines(result.output))
    assert "revision 2" in text
    assert (f"send {new}/hospital_1/ to the site of hospital_1; every other site replaces only "
            "its federation.json with the one in its kit here (its key is unchanged). The old "
            "certificate of hospital_1 is refused by each site running revision 2.") in text
    assert f"keep {new}/ca/ (the CA key) with the operator: never send it to a site." in text
    assert tree(kits) == before
    assert load_kit(new / "hospital_1").federation.revision == 2


@pytest.mark.parametrize("args, message", [
    ([], "--hospitals: give the number of hospitals (or --rotate MEMBER --from KITS)"),
    (["--hospitals", "0"], "--hospitals 0: must be in 1..256"),
    (["--hospitals", "2", "--days", "0"], "--days 0: must be in 1..3650"),
    (["--hospitals", "2", "--name", "-x"], "--name '-x': a federation id is 1-63 lowercase "
     "letters, digits or '-', starting and ending with a letter or digit"),
    (["--hospitals", "2", "--rendezvous", "host"], "--rendezvous 'host': expected HOST:PORT "
     "(a host name or IP address, IPv6 in brackets, and a port 1-65535)"),
    (["--hospitals", "2", "--from", "kits"], "--from: only used with --rotate MEMBER"),
    (["--rotate", "ttp"], "--rotate: give the federation's KITS directory with --from"),
    *[(["--rotate", "ttp", "--from", "kits", *extra], f"{extra[0]}: not used with --rotate (the "
       "federation keeps its members, name, CA and expiry)")
      for extra in (["--hospitals", "2"], ["--ttp"], ["--rendezvous", "h:1"], ["--name", "f"],
                    ["--days", "9"])],
])
def test_wrong_options_give_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("--out", str(tmp_path / "new"), *args)
    assert result.exit_code == 1
    assert _lines(result.output) == [f"error: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_existing_kits_are_refused_and_untouched(tmp_path: Path) -> None:
    kits = tmp_path / "kits"
    assert invoke("--out", str(kits), "--hospitals", "2").exit_code == 0
    before = tree(tmp_path)
    result = invoke("--out", str(kits), "--hospitals", "2")
    assert result.exit_code == 1
    assert _lines(result.output) == [f"error: --out {kits}: already exists; provisioning never "
                                     "overwrites kits (give a new directory)"]
    assert tree(tmp_path) == before


def test_rotate_with_a_missing_from(tmp_path: Path) -> None:
    result = invoke("--rotate", "ttp", "--from", str(tmp_path / "kits"), "--out",
                    str(tmp_path / "new"))
    assert result.exit_code == 1
    assert _lines(result.output) == [f"error: --from {tmp_path}/kits: not a directory"]


def test_help_explains_every_option_with_its_default() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    for option in ("--out", "--hospitals", "--ttp", "--rendezvous", "--name", "--days",
                   "--rotate", "--from"):
        assert option in text
    for default in ("[required]", "Default: no ttp kit.",
                    "Default: hospital_0 hosts the store", "Default: 'fed-' and 16 random hex",
                    "Default: 365.", "Required unless --rotate.", "there is no --seed"):
        assert default in text, default


def test_the_command_module_imports_no_crypto_until_it_runs() -> None:
    """`crypten-fl --help` does not pay for the identity library."""
    code = ("import sys, crypten_fl.cli.provision; "
            "print(sorted(m for m in ('crypten_fl.fedtrain.identity', 'cryptography.x509', "
            "'torch') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.strip() == "[]"
