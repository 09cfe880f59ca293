"""Hostile inputs for `crypten-fl compare`, see helpers/fuzz.py.

compare only reads the JSON files of finished runs, so every case (on copies of the one tiny run
of helpers/fuzz_fixtures.py) is cheap. Cases marked ``reported`` showed defects that are now fixed.
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
    edit_json,
    params,
    place,
    readonly_view,
    remove,
    run_case,
    tmpfs,
    write_file,
)
from helpers.fuzz_fixtures import tiny_run

BASE = ("compare", "{run}", "--out", "{out}")
METRICS, COMM, PRIVACY = "{run}/test_metrics.json", "{run}/comm.json", "{run}/privacy.json"


def reported(what: str) -> tuple[Any, ...]:
    """A case that showed a defect (since fixed): kept as a regression case."""
    return ()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory)


def workspace(pristine: Path, root: Path) -> Workspace:
    run = Path(shutil.copytree(pristine, root / "run",
                               ignore=shutil.ignore_patterns("checkpoints", "eval")))
    return Workspace(root, {"run": run, "out": root / "cmp"}, inputs=["run"], outputs=["out"])


def fails(case_id: str, *mutate: Mutation, error: tuple[str, ...], args: tuple[str, ...] = BASE,
          marks: tuple[Any, ...] = ()) -> Case:
    return Case(case_id, args, mutate, error=error, marks=marks)


def macro_auroc(source: str = "test_metrics.json", runs: int = 1) -> Any:
    """Check: one row per run whose macro AUROC is the one in the run's ``source`` file."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        result = json.loads((ws.paths["out"] / "compare.json").read_text())
        want = json.loads((ws.paths["run"] / source).read_text())["overall"]["macro"]["auroc"]
        assert [r["macro_auroc"] for r in result["runs"]] == [want] * runs
        assert {r["source"] for r in result["runs"]} == {source}
        assert len({r["name"] for r in result["runs"]}) == runs  # names told apart
        assert (ws.paths["out"] / "compare_auroc.png").stat().st_size > 0
    return check


def _second_copy(ws: Workspace) -> None:
    """{run2}: a copy of {run} with the same directory name under another parent."""
    ws.paths["run2"] = Path(shutil.copytree(ws.paths["run"], ws.root / "other" / "run"))
    ws.inputs.append("run2")


def _evaluated(ws: Workspace) -> None:
    """A RUN/eval/metrics.json that differs from test_metrics.json (it must be preferred)."""
    metrics = json.loads((ws.paths["run"] / "test_metrics.json").read_text())
    metrics["overall"]["macro"]["auroc"] = 0.123
    (ws.paths["run"] / "eval").mkdir()
    (ws.paths["run"] / "eval" / "metrics.json").write_text(json.dumps(metrics))


CASES = [
    Case("one-run", BASE, (), check=macro_auroc()),
    Case("same-name-twice", ("compare", "{run}", "{run2}", "--out", "{out}"), (_second_copy,),
         check=macro_auroc(runs=2)),
    Case("evaluated-run", BASE, (_evaluated,), check=macro_auroc("eval/metrics.json")),
    Case("paths-with-spaces-and-unicode", BASE, (place("run", "my run ü 🙂/r"),
                                                  place("out", "cmp é 1")), check=macro_auroc()),
    Case("read-only-run", BASE, (readonly_view("run"),), check=macro_auroc()),
    Case("no-comm-no-privacy", BASE, (remove(COMM), remove(PRIVACY)), check=macro_auroc()),
    fails("no-runs", error=("'runs'",), args=("compare", "--out", "{out}")),
    fails("run-missing", remove("{run}"), error=("{run}", "not found")),
    fails("run-is-a-file", remove("{run}"), write_file("{run}", "x"), error=("{run}",)),
    fails("no-metrics", remove(METRICS), error=("{run}", "test_metrics.json")),
    fails("metrics-not-json", write_file(METRICS, "{"), error=(METRICS, "not valid JSON")),
    fails("metrics-without-overall", edit_json(METRICS, lambda m: {"strategy": "x"}),
          error=(METRICS, "AUROC")),
    fails("metrics-auroc-null", edit_json(METRICS, lambda m: {**m, "overall": {
        **m["overall"], "macro": {"auroc": None}}}), error=(METRICS, "AUROC")),
    fails("comm-not-json", write_file(COMM, "[1,"), error=(COMM, "not valid JSON")),
    fails("out-not-empty", write_file("{out}/mine.txt", "keep"),
          error=("--out {out}", "--overwrite")),
    fails("out-is-a-file", write_file("{out}", "x"), error=("--out {out}", "not a directory")),
    fails("out-parent-read-only", tmpfs("ro", readonly=True), place("out", "ro/cmp"),
          error=("--out {out}", "not writable")),
    fails("metrics-binary", write_file(METRICS, b"\xff\xfe"), error=(METRICS,),
          marks=reported("UnicodeDecodeError through common/manifest.py read_json")),
    fails("metrics-labels-a-list", edit_json(METRICS, lambda m: {**m, "overall": {
        **m["overall"], "labels": [1]}}), error=(METRICS,),
          marks=reported("AttributeError for a list of labels")),
    fails("comm-a-list", write_file(COMM, "[1]"), error=(COMM,),
          marks=reported("AttributeError for a comm.json that is not an object")),
    fails("comm-values-text", edit_json(COMM, lambda c: {
        **c, "seconds_per_round": "fast", "bytes_communicated_per_party_per_round": "many"}),
          error=(COMM,), marks=reported("TypeError for text cost values")),
    fails("privacy-a-list", write_file(PRIVACY, "[1]"), error=(PRIVACY,),
          marks=reported("AttributeError for a privacy.json that is not an object")),
    fails("privacy-hospitals-a-list", edit_json(PRIVACY, lambda p: {
        **p, "dp_sgd": True, "hospitals": [1]}), error=(PRIVACY,),
          marks=reported("AttributeError for a list of hospitals")),
    fails("disk-full", tmpfs("full", size="8k"), place("out", "full/cmp"),
          error=("--out {out}", "No space left on device"),
          marks=reported("OSError escapes when the disk is full")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_compare(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))
