"""`crypten-fl compare` on hand-made run directories: exact table values, files, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.outdir import MARKER
from crypten_fl.fedtrain.experiments.compare import compare, read_run, run_names
from typer.testing import CliRunner

runner = CliRunner()
LABELS = ["sepsis", "aki"]


def _metrics(auroc: list[float], macro: float, strategy: str) -> dict[str, Any]:
    return {"strategy": strategy, "overall": {
        "labels": {n: {"auroc": a} for n, a in zip(LABELS, auroc, strict=True)},
        "macro": {"auroc": macro}}}


def _run(path: Path, *, eval_auroc: list[float] | None = None,
         test_auroc: list[float] | None = None, epsilons: list[float] | None = None,
         strategy: str = "horizontal") -> Path:
    path.mkdir(parents=True)
    if test_auroc is not None:
        (path / "test_metrics.json").write_text(json.dumps(
            _metrics(test_auroc, sum(test_auroc) / 2, strategy)))
    if eval_auroc is not None:
        (path / "eval").mkdir()
        (path / "eval" / "metrics.json").write_text(json.dumps(
            _metrics(eval_auroc, sum(eval_auroc) / 2, strategy)))
    (path / "comm.json").write_text(json.dumps({
        "bytes_communicated_per_party_per_round": 1000.0, "seconds_per_round": 2.5,
        "total_seconds": 50.0}))
    hospitals = {str(k): ({"epsilon": e} if e is not None else None)
                 for k, e in enumerate(epsilons or [None, None])}
    (path / "privacy.json").write_text(json.dumps({"dp_sgd": epsilons is not None,
                                                   "hospitals": hospitals}))
    return path


def test_rows_use_the_evaluation_when_present_and_read_cost_and_privacy(tmp_path) -> None:
    a = _run(tmp_path / "a", eval_auroc=[0.8, 0.6], test_auroc=[0.1, 0.1])
    b = _run(tmp_path / "b", test_auroc=[0.7, 0.5], epsilons=[2.9, 3.0], strategy="fedper")
    ra, rb = read_run(a), read_run(b)
    assert ra["source"] == "eval/metrics.json" and ra["auroc"] == {"sepsis": 0.8, "aki": 0.6}
    assert ra["macro_auroc"] == pytest.approx(0.7) and ra["dp"] is False
    assert ra["epsilon_spent"] is None
    assert rb["source"] == "test_metrics.json" and rb["strategy"] == "fedper"
    assert rb["epsilon_spent"] == 3.0  # the largest over hospitals
    assert (rb["bytes_per_party_per_round"], rb["seconds_per_round"], rb["total_seconds"]) == \
        (1000.0, 2.5, 50.0)


def test_compare_writes_json_csv_markdown_and_png(tmp_path) -> None:
    runs = [_run(tmp_path / "a", eval_auroc=[0.8, 0.6]),
            _run(tmp_path / "b", test_auroc=[0.7, 0.5], epsilons=[1.0, 0.9])]
    result = runner.invoke(app, ["compare", *map(str, runs), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "test AUROC, cost and privacy per run" in result.output
    assert "macro AUROC" in result.output and "ε DP-SGD (per stay)" in result.output
    out = tmp_path / "cmp"
    assert {p.name for p in out.iterdir()} == {"compare.json", "compare.csv", "compare.md",
                                               "compare_auroc.png", MARKER}
    rows = list(csv.reader((out / "compare.csv").open()))
    assert rows[0][:5] == ["run", "strategy", "sepsis", "aki", "macro"]
    assert rows[1][:5] == ["a", "horizontal", "0.8", "0.6", "0.7"]
    assert rows[1][-2] == "no DP" and rows[2][-2] == "1.0"
    assert rows[0][-1] == "hospital ε" and rows[1][-1] == rows[2][-1] == ""
    data = json.loads((out / "compare.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["a", "b"] and data["label_names"] == LABELS
    assert "| a | horizontal | 0.800 | 0.600 | 0.700 |" in (out / "compare.md").read_text()


def test_runs_with_the_same_name_get_their_parent() -> None:
    assert run_names([Path("x/run"), Path("y/run")]) == ["x/run", "y/run"]
    assert run_names([Path("x/a"), Path("y/b")]) == ["a", "b"]


@pytest.mark.parametrize("case, message", [
    ("missing", "run directory not found"),
    ("empty", "neither eval/metrics.json nor test_metrics.json"),
    ("exists", "directory exists and is not empty (use --overwrite)"),
])
def test_bad_input_fails_with_one_line_and_writes_nothing(case, message, tmp_path) -> None:
    good = _run(tmp_path / "good", test_auroc=[0.6, 0.6])
    other = tmp_path / "other"
    out = tmp_path / "cmp"
    if case == "empty":
        other.mkdir()
    elif case == "exists":
        other = good
        out.mkdir()
        (out / "keep.txt").write_text("x")
    result = runner.invoke(app, ["compare", str(good), str(other), "--out", str(out)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert (not out.exists()) if case != "exists" else [p.name for p in out.iterdir()] == [
        "keep.txt"]


def test_library_call_refuses_an_empty_list(tmp_path) -> None:
    with pytest.raises(Exception, match="at least one run"):
        compare([], tmp_path / "cmp")


def test_the_hospital_level_epsilon_of_central_dp_is_read_from_privacy_json(tmp_path) -> None:
    run = _run(tmp_path / "c", test_auroc=[0.7, 0.5])
    privacy = json.loads((run / "privacy.json").read_text())
    (run / "privacy.json").write_text(json.dumps({**privacy, "central_dp": {"epsilon": 30.1}}))
    row = read_run(run)
    assert row["hospital_epsilon"] == 30.1 and row["epsilon_spent"] is None
    assert read_run(_run(tmp_path / "d", test_auroc=[0.7, 0.5]))["hospital_epsilon"] is None


def test_the_strategy_column_names_the_server_optimizer_and_fedprox() -> None:
    from crypten_fl.fedtrain.experiments.compare import algorithm

    assert algorithm("horizontal", {"server_opt": "fedadam", "server_lr": 0.03, "prox_mu": 0.01}
                     ) == "horizontal · fedadam η=0.03 · prox μ=0.01"
    assert algorithm("fedper", {"server_opt": "fedavg", "server_lr": 1.0}) == "fedper"
    assert algorithm("horizontal", {"server_opt": "fedyogi"}) == "horizontal · fedyogi η=0.01"
    assert algorithm("local", {"server_opt": "fedadam", "prox_mu": 1.0}) == "local"
    assert algorithm("horizontal", {}) == "horizontal"
    assert algorithm("horizontal", {"server_opt": "sgd"}) == "horizontal"  # unreadable: as is
