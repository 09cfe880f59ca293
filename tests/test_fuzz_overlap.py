"""Hostile output locations for every writing command, see helpers/fuzz.py and common/outdir.py.

For each command and each thing it reads, ``--out`` is pointed at that input, inside it and around
it, spelt as an absolute path, a relative path and through a symbolic link, with and without
``--overwrite``: every case must be refused with one line naming both paths, and the harness checks
that the inputs stay byte-identical and no output appears. Then ``--overwrite`` onto folders that
crypten-fl did not write (a user's folder, another command's output, an output the user added files
to) is refused too, and onto the command's own earlier output it succeeds.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from crypten_fl.common.outdir import MARKER, read_marker, write_marker
from crypten_fl.fedtrain.identity import provision
from helpers.cohort_fixture import random_cohort
from helpers.fuzz import Case, Mutation, Outcome, Workspace, copy_into, params, run_case
from helpers.fuzz_fixtures import TINY_OPTIONS, tiny_federation, tiny_run
from helpers.mimic_fixture import write_mimic

RDV = "tcp://127.0.0.1:9"


@dataclass(frozen=True)
class Command:
    """A writing command: its command line (with ``{out}``), the label its messages give the
    output, and what it reads: workspace name -> (label in messages, subfolders that exist)."""

    name: str
    args: tuple[str, ...]
    reads: dict[str, tuple[str, tuple[str, ...]]]
    out_label: str = "--out"
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}{self.variant}"


COMMANDS = [
    Command("synth", ("synth", "--out", "{out}", "--patients", "3", "--seed", "2"), {}),
    Command("extract", ("extract", "--mimic-dir", "{mimic}", "--out", "{out}", "--threads", "1"),
            {"mimic": ("--mimic-dir", ("hosp", "icu"))}),
    Command("partition", ("partition", "--cohort", "{cohort}", "--out", "{out}",
                          "--hospitals", "2"), {"cohort": ("--cohort", ())}),
    Command("prepare", ("prepare", "--cohort", "{cohort}", "--out", "{out}"),
            {"cohort": ("--cohort", ())}),
    Command("train", ("train", "--fed", "{fed}", "--out", "{out}", *TINY_OPTIONS),
            {"fed": ("--fed", ("hospital_1",))}),
    Command("sweep", ("sweep", "--fed", "{fed}", "--out", "{out}", *TINY_OPTIONS),
            {"fed": ("--fed", ("hospital_0",))}),
    Command("compare", ("compare", "{run}", "--out", "{out}"), {"run": ("RUNS", ("checkpoints",))}),
    Command("audit", ("audit", "--run", "{run}", "--out", "{out}"),
            {"run": ("--run", ()), "fed": ("its federation", ("hospital_0",))}),
    Command("node", ("node", "--insecure-transport", "--out", "{out}", "--rendezvous", RDV,
                     "--data", "{data}", "--run-config", "{config}", "--rank", "0",
                     "--world-size", "2"),
            {"data": ("--data", ()), "config": ("--run-config", ())}),
    Command("node", ("node", "--kit", "{kit}", "--out", "{out}", "--rendezvous", RDV,
                     "--data", "{data}", "--run-config", "{config}"),
            {"data": ("--data", ()), "kit": ("--kit", ())}, variant="-with-kit"),
]
BY_NAME = {c.name: c for c in COMMANDS}
#: what each command reads, as workspace names (audit and evaluate read the run's federation)
NEEDS = {"synth": (), "extract": ("mimic",), "partition": ("cohort",), "prepare": ("cohort",),
         "train": ("fed",),
         "sweep": ("fed",), "compare": ("run",), "audit": ("run", "fed"),
         "evaluate": ("run", "fed"), "node": ("data", "config", "kit")}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz-overlap")
    return {"mimic": write_mimic(root / "mimic"),
            "cohort": random_cohort(root / "cohort", n_patients=40, seed=0).path,
            "fed": tiny_federation(tmp_path_factory), "run": tiny_run(tmp_path_factory)}


def workspace(pristine: dict[str, Path], root: Path, command: str) -> Workspace:
    """Copies of what ``command`` reads; a copied run's config points at the copied federation."""
    paths: dict[str, Path] = {"out": root / "output"}
    needs = NEEDS[command]
    for name in ("mimic", "cohort", "fed"):
        if name in needs or (name == "fed" and "run" in needs) or (
                name == "fed" and command == "node"):
            paths[name] = copy_into(root, pristine[name], name)
    if "run" in needs:
        paths["run"] = Path(shutil.copytree(pristine["run"], root / "run",
                                            ignore=shutil.ignore_patterns("eval", "audit")))
        config = json.loads((paths["run"] / "config.json").read_text())
        (paths["run"] / "config.json").write_text(json.dumps({**config,
                                                              "fed": str(paths["fed"])}))
    if command == "node":
        provision(root / "kits", 2, ttp=False, rendezvous=None)
        paths["kit"] = root / "kits" / "hospital_0"
        paths["data"] = paths["fed"] / "hospital_0"
        config = json.loads((pristine["run"] / "config.json").read_text())
        paths["config"] = root / "config.json"
        paths["config"].write_text(json.dumps({**config, "fed": str(paths["fed"])}))
    inputs = [n for n in paths if n != "out" and n in (*needs, "fed", "data", "config", "kit")]
    return Workspace(root, paths, inputs=inputs, outputs=["out"])


# --- the output pointed at an input -------------------------------------------------------

def redirect(base: str, suffix: str, spelling: str) -> Mutation:
    """Point ``{out}`` at ``base/suffix`` (``base`` a template), spelt ``abs``olute, ``rel``ative
    to the working directory, or ``link``: through a symbolic link to ``base``."""
    def mutate(ws: Workspace) -> None:
        target = ws.path(base)
        if spelling == "link":
            link = ws.root / "link-to-input"
            link.symlink_to(target, target_is_directory=target.is_dir())
            target = link
        path = target / suffix if suffix else target
        if spelling == "rel":
            path = Path(os.path.relpath(path))
        ws.paths["out"] = path
    return mutate


def _targets(command: Command) -> list[tuple[str, str, str, str]]:
    """(case name, base, suffix, expected relation with its label) of each output location."""
    targets = []
    for name, (label, subfolders) in command.reads.items():
        if command.name == "audit" and name == "run":  # audit reads RUN's files, not RUN/
            targets += [("run-is", "{run}", "", "contains --run"),
                        ("run-is-checkpoints", "{run}/checkpoints", "", "is --run"),
                        ("run-inside-checkpoints", "{run}/checkpoints", "new", "lies inside --run")]
            continue
        targets.append((f"{name}-is", f"{{{name}}}", "", f"is {label}"))
        if name != "config":  # a file: nothing lies inside it
            targets.append((f"{name}-inside-new", f"{{{name}}}", "new", f"lies inside {label}"))
        targets += [(f"{name}-inside-{s}", f"{{{name}}}/{s}", "", f"lies inside {label}")
                    for s in subfolders]
    if command.reads:  # the workspace root holds every input: the first one is named
        label = next(iter(command.reads.values()))[0]
        targets.append(("around", "{root}", "", f"contains {label}"))
    return targets


def overlap_cases() -> list[Case]:
    cases = []
    for command in COMMANDS:
        flags = [()] if command.name == "node" else [(), ("--overwrite",)]
        for where, base, suffix, how in _targets(command):
            for spelling in ("abs", "rel", "link"):
                for flag in flags:
                    case_id = f"{command.id}-{where}-{spelling}{'-overwrite' if flag else ''}"
                    cases.append(Case(case_id, (*command.args, *flag),
                                      (redirect(base, suffix, spelling),),
                                      error=(f"{command.out_label} {{out}}: {how}",)))
    return cases


EVAL_OUT = "{run}/eval"


def eval_link(target: str) -> Mutation:
    """RUN/eval is a symbolic link to ``target`` (RUN/eval is evaluate's fixed output)."""
    def mutate(ws: Workspace) -> None:
        (ws.paths["run"] / "eval").symlink_to(ws.path(target))
        ws.paths["out"] = ws.paths["run"] / "eval"
    return mutate


def evaluate_cases() -> list[Case]:
    cases = []
    for where, target, how in (("is-fed", "{fed}", "is its federation"),
                               ("in-fed", "{fed}/hospital_0", "lies inside its federation"),
                               ("around", "{root}", "contains --run"),
                               ("is-checkpoints", "{run}/checkpoints", "is --run")):
        for flag in ((), ("--overwrite",)):
            cases.append(Case(f"evaluate-eval-link-{where}{'-overwrite' if flag else ''}",
                              ("evaluate", "--run", "{run}", *flag), (eval_link(target),),
                              error=(f"evaluation output {EVAL_OUT}: {how}",)))
    return cases


# --- --overwrite onto folders crypten-fl did not write --------------------------------------

def occupied(marker: dict[str, Any] | None, files: tuple[str, ...] = ("mine.txt",)) -> Mutation:
    """``{out}`` exists and holds ``files`` (and ``marker``'s marker file, if given)."""
    def mutate(ws: Workspace) -> None:
        out = ws.paths["out"]
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            (out / name).write_text("the user's own file\n")
        if marker is not None:
            write_marker(out, **marker)
    return mutate


def foreign_cases() -> list[Case]:
    cases = []
    for command in [*COMMANDS, Command("evaluate", ("evaluate", "--run", "{run}"), {},
                                       out_label="evaluation output")]:
        name, args = command.name, command.args
        other = "synth" if name != "synth" else "extract"
        flag = () if name == "node" else ("--overwrite",)
        to_eval = (_eval_out,) if name == "evaluate" else ()
        out = f"{command.out_label} {{out}}"
        cases += [
            Case(f"{command.id}-overwrite-user-folder", (*args, *flag), (*to_eval, occupied(None)),
                 error=(out, "not a directory written by crypten-fl")),
            Case(f"{command.id}-overwrite-other-command", (*args, *flag),
                 (*to_eval, occupied({"command": other, "entries": ["mine.txt"]})),
                 error=(out, f"written by `crypten-fl {other}`")),
        ]
        if name != "node":  # a node's directory is a working directory: no list of entries
            cases.append(Case(
                f"{name}-overwrite-user-added-files", (*args, *flag),
                (*to_eval, occupied({"command": name, "entries": ["mine.txt"]},
                                    files=("mine.txt", "notes.txt"))),
                error=(out, "did not write (notes.txt)")))
        if flag:
            cases.append(Case(f"{name}-no-overwrite-occupied", args,
                              (*to_eval, occupied({"command": name, "entries": ["mine.txt"]})),
                              error=(out, "--overwrite")))
    return cases


def _eval_out(ws: Workspace) -> None:
    ws.paths["out"] = ws.paths["run"] / "eval"


def replaced(command: str, files: tuple[str, ...]) -> Callable[[Workspace, Outcome], None]:
    """Check: the old output (with its nested crypten-fl output) is gone, the new one is whole and
    marked as ``command``'s, listing exactly its top-level entries."""
    def check(ws: Workspace, outcome: Outcome) -> None:
        out = ws.paths["out"]
        assert not (out / "old.txt").exists() and not (out / "nested").exists()
        for name in files:
            assert (out / name).exists(), name
        marker = read_marker(out)
        assert marker is not None and marker["command"] == command
        assert marker["entries"] == sorted(p.name for p in out.iterdir() if p.name != MARKER)
    return check


def earlier_output(command: str) -> Mutation:
    """``{out}`` is an earlier output of ``command``, holding a nested crypten-fl output."""
    def mutate(ws: Workspace) -> None:
        occupied({"command": command, "entries": ["old.txt"]}, files=("old.txt",))(ws)
        nested = ws.paths["out"] / "nested"
        nested.mkdir()
        write_marker(nested, "evaluate", [])
    return mutate


OWN_OUTPUT = {
    "synth": ("synth_summary.json", "hosp", "icu"),
    "extract": ("manifest.json", "static.parquet", "timeseries.parquet", "labels.parquet"),
    "partition": ("partition.json", "hospital_0", "hospital_1"),
    "prepare": ("manifest.json", "train.parquet", "val.parquet", "test.parquet"),
    "compare": ("compare.json",),
    "train": ("config.json", "test_metrics.json", "comm.json"),
}


def own_cases() -> list[Case]:
    return [Case(f"{name}-overwrite-own-output", (*BY_NAME[name].args, "--overwrite"),
                 (earlier_output(name),), check=replaced(name, files))
            for name, files in OWN_OUTPUT.items()]


CASES = [*overlap_cases(), *evaluate_cases(), *foreign_cases(), *own_cases()]


@pytest.mark.parametrize("case", params(CASES))
def test_output_location(case: Case, pristine: dict[str, Path], tmp_path: Path) -> None:
    command = case.args[0]
    ws = workspace(pristine, tmp_path, command)
    ws.paths["root"] = tmp_path
    if case.error is not None and command != "synth":  # nothing else in the root may change
        ws.inputs.append("root")
    run_case(case, ws)
