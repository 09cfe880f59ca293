"""The packages form layers: no import cycle between them, and strategies sit below the round
loop that drives them (they import configuration, sessions and helpers, never the runner, the
evaluation or the audit). Imports inside functions count too: a lazy import hides a cycle, it
does not remove it."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("fedtrain", "mimic_etl", "common")


def _unit(module: str) -> str | None:
    """The layer a module belongs to: its subpackage (fedtrain.run), or a top-level module."""
    parts = module.removeprefix("crypten_fl.").split(".")
    if parts[0] not in ROOTS:
        return None
    unit = ".".join(parts[:2]) if len(parts) > 1 else parts[0]
    path = REPO.joinpath(*unit.split("."))
    return unit if path.is_dir() or path.with_suffix(".py").exists() else parts[0]


def import_graph() -> dict[str, set[str]]:
    """unit -> the units it imports (module level and inside functions)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for root in ROOTS:
        for file in (REPO / root).rglob("*.py"):
            module = ".".join(file.relative_to(REPO).with_suffix("").parts)
            source = _unit(module.removesuffix(".__init__"))
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                else:
                    continue
                for target in targets:
                    unit = _unit(target)
                    if unit is not None and unit not in (source, *ROOTS):
                        edges[source].add(unit)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_packages() -> None:
    edges = import_graph()
    assert edges["fedtrain.run"], "the graph is empty: the walk found nothing"
    assert cycles(edges) == []


def test_strategies_are_driven_never_driving() -> None:
    above = {"fedtrain.run", "fedtrain.evaluate", "fedtrain.privacy", "fedtrain.experiments",
             "fedtrain.launch"}
    assert import_graph()["fedtrain.strategies"] & above == set()


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_shared_infrastructure_imports_neither_side() -> None:
    edges = import_graph()
    shared = [unit for unit in edges if unit.startswith("common")]
    assert shared, "common/ was not walked"
    for unit in shared:
        assert not {u for u in edges[unit] if u.startswith(("fedtrain", "mimic_etl"))}, unit


def test_fault_injection_is_installed_by_the_party_alone() -> None:
    """No production code path calls into the fault injector: only the party process installs
    it, and only when a test or benchmark asks for a fault (fedtrain/faults.py)."""
    importers = {unit for unit, targets in import_graph().items() if "fedtrain.faults" in targets}
    assert importers == {"fedtrain.party"}
