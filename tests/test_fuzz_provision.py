"""Hostile inputs for `crypten-fl provision` (and its --rotate, whose input is a KITS
directory), see helpers/fuzz.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from crypten_fl.common.outdir import MARKER
from crypten_fl.fedtrain.identity import load_kit
from helpers.fuzz import (
    Case,
    Outcome,
    Workspace,
    copy_into,
    edit_json,
    flip_byte,
    params,
    place,
    readonly_view,
    remove,
    run_case,
    tmpfs,
    truncate,
    write_file,
)
from helpers.identities import kits

NEW = ("provision", "--out", "{out}", "--hospitals", "2", "--ttp")
ROTATE = ("provision", "--rotate", "hospital_1", "--from", "{kits}", "--out", "{out}")
CA_KEY, CA_CRT, CA_FED = "{kits}/ca/ca.key", "{kits}/ca/ca.crt", "{kits}/ca/federation.json"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kits(tmp_path_factory.mktemp("fuzz-provision"), 3, ttp=True)


def workspace(pristine: Path, root: Path) -> Workspace:
    copied = copy_into(root, pristine, "kits")
    return Workspace(root, {"kits": copied, "out": root / "new"}, inputs=["kits"],
                     outputs=["out"])


def chmod(target: str, mode: int):
    def mutate(ws: Workspace) -> None:
        os.chmod(ws.path(target), mode)
    return mutate


def copy_file(source: str, target: str):
    def mutate(ws: Workspace) -> None:
        shutil.copy(ws.path(source), ws.path(target))
    return mutate


def kits_load(revision: int):
    def check(ws: Workspace, outcome: Outcome) -> None:
        out = ws.paths["out"]
        loaded = [load_kit(p) for p in sorted(out.iterdir()) if p.name not in ("ca", MARKER)]
        assert {kit.federation.revision for kit in loaded} == {revision}
        text = " ".join(outcome.stdout.split())
        assert f"keep {out}/ca/ (the CA key) with the operator: never send it" in text
    return check


def fails(case_id: str, *mutations, args: tuple[str, ...] = ROTATE, error: tuple[str, ...],
          marks: tuple = ()) -> Case:
    return Case(case_id, args, tuple(mutations), error=error, marks=marks)


CASES = [
    # a new federation: only --out can be hostile
    Case("new-paths-with-spaces-and-unicode", NEW, (place("out", "kits é 1 new 🙂"),),
         check=kits_load(1)),
    fails("new-out-parent-missing", place("out", "no/such/new"), args=NEW,
          error=("--out {out}", "does not exist")),
    fails("new-out-parent-read-only", tmpfs("ro", readonly=True), place("out", "ro/new"),
          args=NEW, error=("--out {out}", "not writable")),
    fails("new-disk-full", tmpfs("full", size="8k"), place("out", "full/new"), args=NEW,
          error=("--out {out}", "No space left on device")),
    fails("new-out-is-a-file", write_file("{out}", "x"), args=NEW,
          error=("--out {out}", "already exists")),
    fails("new-hospitals-not-a-number", args=("provision", "--out", "{out}", "--hospitals",
                                              "two"), error=("--hospitals",)),
    fails("new-days-negative", args=(*NEW, "--days", "-1"), error=("--days -1",)),
    fails("new-name-with-slash", args=(*NEW, "--name", "fed/x"), error=("--name 'fed/x'",)),
    # rotation: the KITS directory it reads
    Case("rotate", ROTATE, (), check=kits_load(2)),
    Case("rotate-kits-read-only", ROTATE, (readonly_view("kits"),), check=kits_load(2)),
    fails("rotate-kits-missing", remove("{kits}"), error=("--from {kits}", "not a directory")),
    fails("rotate-ca-dir-missing", remove("{kits}/ca"), error=(CA_KEY, "file not found")),
    fails("rotate-ca-key-missing", remove(CA_KEY), error=(CA_KEY, "file not found")),
    fails("rotate-ca-key-a-directory", remove(CA_KEY), write_file(CA_KEY + "/x", ""),
          error=(CA_KEY, "file not found")),
    fails("rotate-ca-key-readable-by-others", chmod(CA_KEY, 0o644),
          error=(CA_KEY, "mode 0644")),
    fails("rotate-ca-key-garbage", write_file(CA_KEY, "not a key"),
          error=(CA_KEY, "not an unencrypted PEM private key")),
    fails("rotate-ca-key-truncated", truncate(CA_KEY, 0.5), error=(CA_KEY,)),
    fails("rotate-ca-key-empty", write_file(CA_KEY, ""), error=(CA_KEY,)),
    fails("rotate-ca-key-of-a-member", copy_file("{kits}/ttp/member.key", CA_KEY),
          error=(CA_KEY, "does not match", CA_CRT)),
    fails("rotate-ca-crt-flipped", flip_byte(CA_CRT, 0.5), error=(CA_CRT,)),
    fails("rotate-ca-crt-empty", write_file(CA_CRT, ""), error=(CA_CRT, "not a PEM certificate")),
    fails("rotate-federation-json-not-json", write_file(CA_FED, "{"),
          error=(CA_FED, "not valid JSON")),
    fails("rotate-federation-json-a-list", write_file(CA_FED, "[]"),
          error=(CA_FED, "expected a JSON object")),
    fails("rotate-federation-json-binary", write_file(CA_FED, b"\xff\xfe\x00"), error=(CA_FED,)),
    fails("rotate-federation-json-fingerprint-edited",
          edit_json(CA_FED, lambda d: {**d, "ca_fingerprint": "0" * 64}),
          error=(CA_FED, "ca_fingerprint does not match")),
    fails("rotate-member-unknown", args=(*ROTATE[:2], "hospital_5", *ROTATE[3:]),
          error=("--rotate hospital_5", "no such member")),
    fails("rotate-other-kit-missing", remove("{kits}/hospital_0"),
          error=("{kits}/hospital_0", "not a kit directory")),
    fails("rotate-other-kit-key-missing", remove("{kits}/hospital_0/member.key"),
          error=("{kits}/hospital_0/member.key", "file not found")),
    fails("rotate-other-kit-key-readable", chmod("{kits}/ttp/member.key", 0o640),
          error=("{kits}/ttp/member.key", "mode 0640")),
    fails("rotate-other-kit-federation-json-broken", truncate("{kits}/ttp/federation.json", 0.3),
          error=("{kits}/ttp/federation.json",)),
    fails("rotate-out-inside-kits", place("out", "kits/new"),
          error=("--out {out}", "lies inside --from")),
    fails("rotate-out-exists", write_file("{out}/mine", "keep"),
          error=("--out {out}", "already exists")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_provision(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
