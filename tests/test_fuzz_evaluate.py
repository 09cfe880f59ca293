"""Hostile inputs for `crypten-fl evaluate`, see helpers/fuzz.py.

Each case works on copies of the one tiny run of helpers/fuzz_fixtures.py and of its federation
(the copy's config.json points at the copied federation). By default only inputs refused before
any hospital process starts run; the evaluations themselves (about 15 s each) are marked slow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.fuzz import (
    Case,
    Mutation,
    Outcome,
    Workspace,
    copy_into,
    edit_json,
    params,
    place,
    readonly_view,
    remove,
    run_case,
    with_values,
    write_file,
)
from helpers.fuzz_fixtures import tiny_federation, tiny_run

BASE = ("evaluate", "--run", "{run}")
CONFIG = "{run}/config.json"
SLOW = (pytest.mark.slow,)


def reported(what: str, slow: bool = False) -> tuple[Any, ...]:
    """A case that showed a defect (since fixed): kept as a regression case."""
    return SLOW[:slow]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_run(tmp_path_factory), tiny_federation(tmp_path_factory)


def workspace(pristine: tuple[Path, Path], root: Path) -> Workspace:
    run, fed = pristine
    fed_copy = copy_into(root, fed, "fed")
    run_copy = Path(shutil.copytree(run, root / "run",
                                    ignore=shutil.ignore_patterns("checkpoints", "eval")))
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "fed": str(fed_copy)}))
    return Workspace(root, {"run": run_copy, "fed": fed_copy, "eval": run_copy / "eval"},
                     inputs=["run", "fed"], outputs=["eval"])


def fails(case_id: str, *mutate: Mutation, error: tuple[str, ...], args: tuple[str, ...] = (),
          marks: tuple[Any, ...] = (), subprocess: bool = False) -> Case:
    return Case(case_id, (*BASE, *args), mutate, error=error, marks=marks, subprocess=subprocess)


def _eval_in_run(ws: Workspace) -> None:
    """After {run} moved: its evaluation output moves with it."""
    ws.paths["eval"] = ws.paths["run"] / "eval"


def _relink(ws: Workspace) -> None:
    """After moving {run} or {fed}: point the run's config at the federation's new place."""
    path = ws.paths["run"] / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "fed": str(ws.paths["fed"])}))
    _eval_in_run(ws)


def evaluated(ws: Workspace, outcome: Outcome) -> None:
    """Check: RUN/eval holds a complete report whose per-hospital stays add up to the test sets."""
    metrics = json.loads((ws.paths["eval"] / "metrics.json").read_text())
    assert {"tables.md", "metrics.csv", "metrics.json"} <= {
        p.name for p in ws.paths["eval"].iterdir()}
    per = metrics["per_hospital"]
    counts = [json.loads((ws.paths["fed"] / f"hospital_{k}" / "manifest.json").read_text())
              ["counts"]["test"] for k in range(2)]
    assert sorted(h["n"] for h in per.values()) == sorted(counts)
    assert 0.0 <= metrics["overall"]["macro"]["auroc"] <= 1.0


CASES = [
    *[fails(f"option-bins-{v}", args=("--bins", v), error=("--bins",))
      for v in ("0", "1", "100001", "-5", "many")],
    *[fails(f"option-threshold-{name}", args=("--threshold", v), error=("--threshold",))
      for name, v in (("unknown", "best"), ("nan", "nan"), ("inf", "inf"), ("negative", "-0.1"),
                      ("above-1", "1.5"), ("empty", ""))],
    fails("option-seed-not-a-number", args=("--seed", "x"), error=("--seed",)),
    fails("run-missing", remove("{run}"), error=("--run {run}", "not found")),
    fails("run-is-a-file", remove("{run}"), write_file("{run}", "x"),
          error=("--run {run}", "not found")),
    fails("config-missing", remove(CONFIG), error=("--run {run}", "config.json")),
    fails("config-empty", write_file(CONFIG, ""), error=(CONFIG,)),
    fails("config-not-json", write_file(CONFIG, "{'fed': 1}"), error=(CONFIG,)),
    fails("config-strategy-unknown", edit_json(CONFIG, with_values(strategy="gossip")),
          error=("--strategy",)),
    fails("config-rounds-text", edit_json(CONFIG, with_values(rounds="x")), error=(CONFIG,)),
    fails("config-fed-moved", edit_json(CONFIG, with_values(fed="/nonexistent/fed")),
          error=(CONFIG, "/nonexistent/fed")),
    fails("config-binary", write_file(CONFIG, b"\xff\xfe\x00"), error=(CONFIG,),
          marks=reported("fedtrain/config.py TrainConfig.load: UnicodeDecodeError escapes")),
    fails("config-a-list", write_file(CONFIG, "[1]"), error=(CONFIG,),
          marks=reported("fedtrain/config.py TrainConfig.from_json: AttributeError")),
    fails("config-fed-a-number", edit_json(CONFIG, with_values(fed=5)), error=(CONFIG,),
          marks=reported("fedtrain/evaluate/runs.py <- TrainConfig: a non-text fed is a "
                         "TypeError; config.py does not check field types")),
    fails("model-missing", remove("{run}/model.safetensors"),
          error=("{run}/model.safetensors", "not found")),
    fails("federation-hospital-missing", remove("{fed}/hospital_1/manifest.json"),
          error=("{fed}/hospital_1/manifest.json",)),
    fails("eval-exists", write_file("{eval}/mine.txt", "keep"),
          error=("evaluation output {eval}", "--overwrite")),
    fails("eval-is-a-file", write_file("{eval}", "x"),
          error=("evaluation output {eval}", "not a directory")),
    fails("run-read-only", readonly_view("run"), _eval_in_run,
          error=("evaluation output {eval}", "not writable")),
    Case("subprocess-run-missing", BASE, (remove("{run}"),), error=("--run {run}",),
         subprocess=True, marks=SLOW),
    Case("paths-with-spaces-and-unicode", BASE, (place("run", "my run ü 🙂/r"),
                                                  place("fed", "fed é/f"), _relink),
         check=evaluated, marks=SLOW),
    Case("plain-evaluation", (*BASE, "--plain", "--threshold", "0.5"), (), check=evaluated,
         marks=SLOW),
]


@pytest.mark.parametrize("case", params(CASES))
def test_evaluate(case: Case, pristine: tuple[Path, Path], tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
