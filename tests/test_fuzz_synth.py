"""Hostile inputs for `crypten-fl synth`, see helpers/fuzz.py.

synth reads no input file: its hostile inputs are options and output locations (read-only, full,
occupied, with spaces and unicode in the name).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from crypten_fl.mimic_etl.synth import SUMMARY_FILE, generate
from crypten_fl.mimic_etl.synth.schema import TABLES, table_path
from helpers.fuzz import Case, Outcome, Workspace, params, place, run_case, tmpfs, write_file

BASE = ("synth", "--out", "{out}", "--patients", "3", "--seed", "2")


def workspace(root: Path) -> Workspace:
    return Workspace(root, {"out": root / "mimic"}, inputs=[], outputs=["out"])


def same_release(ws: Workspace, outcome: Outcome) -> None:
    """Check: byte-identical tables to a release generated with the same options elsewhere."""
    def digests(root: Path) -> dict[str, str]:
        return {t: hashlib.sha256(table_path(root, t).read_bytes()).hexdigest() for t in TABLES}
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "mimic", 3, seed=2)
        assert digests(ws.paths["out"]) == digests(Path(tmp) / "mimic")


def seed_recorded(seed: int) -> Callable[[Workspace, Outcome], None]:
    """Check: a complete release whose summary records ``seed``."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        summary = json.loads((ws.paths["out"] / SUMMARY_FILE).read_text())
        assert summary["seed"] == seed
        assert all(table_path(ws.paths["out"], t).stat().st_size > 0 for t in TABLES)
    return check


def option(case_id: str, *args: str, error: str) -> Case:
    return Case(f"option-{case_id}", ("synth", "--out", "{out}", *args), (), error=(error,))


CASES = [
    option("patients-0", "--patients", "0", error="--patients 0"),
    option("patients-negative", "--patients", "-3", error="--patients -3"),
    option("patients-too-many", "--patients", "500001", error="--patients 500001"),
    option("patients-text", "--patients", "many", error="--patients"),
    option("patients-float", "--patients", "1e3", error="--patients"),
    option("patients-missing", error="--patients"),
    option("version-unknown", "--patients", "3", "--version", "4.0", error="--version 4.0"),
    option("version-empty", "--patients", "3", "--version", "", error="--version"),
    option("seed-negative", "--patients", "3", "--seed", "-1", error="--seed -1"),
    Case("out-is-a-file", BASE, (write_file("{out}", "x"),),
         error=("--out {out}", "not a directory")),
    Case("out-not-empty", BASE, (write_file("{out}/mine.txt", "keep"),),
         error=("--out {out}", "--overwrite")),
    Case("out-parent-missing", BASE, (place("out", "nowhere/mimic"),),
         error=("--out {out}", "does not exist")),
    Case("out-parent-read-only", BASE, (tmpfs("ro", readonly=True), place("out", "ro/mimic")),
         error=("--out {out}", "not writable")),
    Case("disk-full", BASE, (tmpfs("full", size="64k"), place("out", "full/mimic")),
         error=("--out {out}", "No space left on device")),
    Case("paths-with-spaces-and-unicode", BASE, (place("out", "my mimic ü 🙂"),),
         check=same_release, marks=(pytest.mark.slow,)),
    Case("seed-beyond-64-bits", ("synth", "--out", "{out}", "--patients", "1", "--seed",
                                 str(10**30)), (), check=seed_recorded(10**30),
         marks=(pytest.mark.slow,)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_synth(case: Case, tmp_path: Path) -> None:
    run_case(case, workspace(tmp_path))
