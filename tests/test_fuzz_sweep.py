"""Hostile inputs for `crypten-fl sweep`, see helpers/fuzz.py.

Everything refused before the first training runs by default; the one successful sweep (a single
non-private run of one round, about 10 s) is marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.fuzz import (
    Case,
    Outcome,
    Workspace,
    copy_into,
    params,
    place,
    remove,
    run_case,
    tmpfs,
    write_file,
)
from helpers.fuzz_fixtures import TINY_OPTIONS, tiny_federation

BASE = ("sweep", "--fed", "{fed}", "--out", "{out}", *TINY_OPTIONS)


def reported(what: str) -> tuple[Any, ...]:
    """A case that showed a defect (since fixed): kept as a regression case."""
    return ()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_federation(tmp_path_factory)


def workspace(pristine: Path, root: Path) -> Workspace:
    fed = copy_into(root, pristine, "fed")
    return Workspace(root, {"fed": fed, "out": root / "sweep"}, inputs=["fed"], outputs=["out"])


def one_plain_run(ws: Workspace, outcome: Outcome) -> None:
    """Check: one row (ε = inf) whose AUROC is the one its run wrote."""
    out = ws.paths["out"]
    rows = json.loads((out / "sweep.json").read_text())["runs"]
    metrics = json.loads((out / "eps_inf" / "test_metrics.json").read_text())
    assert [(r["label"], r["macro_auroc"]) for r in rows] == [
        ("inf", metrics["overall"]["macro"]["auroc"])]


EPSILONS = {"zero": "0", "negative": "-1", "text": "abc", "empty": "", "commas-only": ",",
            "repeated": "1,1.0", "nan": "nan"}
CASES = [
    *[Case(f"dp-epsilon-{name}", (*BASE, "--dp-epsilon", value), (), error=("--dp-epsilon",))
      for name, value in EPSILONS.items()],
    Case("strategy-gossip", (*BASE, "--strategy", "gossip"), (), error=("--strategy",)),
    Case("rounds-0", (*BASE, "--rounds", "0"), (), error=("--rounds",)),
    Case("lr-negative", (*BASE, "--lr", "-1"), (), error=("--lr",)),
    Case("fed-missing", BASE, (remove("{fed}"),), error=("--fed {fed}",)),
    Case("out-not-empty", BASE, (write_file("{out}/mine.txt", "keep"),),
         error=("--out {out}", "--overwrite")),
    Case("out-parent-read-only", BASE, (tmpfs("ro", readonly=True), place("out", "ro/s")),
         error=("--out {out}", "not writable")),
    Case("heads-0", (*BASE, "--heads", "0"), (), error=("--heads",),
         marks=reported("fedtrain/config.py: ZeroDivisionError in validate()")),
    Case("timeout-inf", (*BASE, "--timeout", "inf", "--dp-epsilon", "inf"), (),
         error=("--timeout",), marks=reported("fedtrain/launch.py: OverflowError")),
    Case("paths-with-spaces-and-unicode", (*BASE, "--dp-epsilon", "inf", "--plain"),
         (place("fed", "my fed ü 🙂/f"), place("out", "sweep é 1")), check=one_plain_run,
         marks=(pytest.mark.slow,)),
]


@pytest.mark.parametrize("case", params(CASES))
def test_sweep(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
