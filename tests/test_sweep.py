"""`crypten-fl sweep`: ε parsing, bad input before any training, and a real two-point sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import MARKER
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.experiments.sweep import epsilon_label, parse_epsilons, sweep, sweep_table
from helpers.evaluate import SMALL
from helpers.federation import small_federation
from typer.testing import CliRunner

runner = CliRunner()


def test_parse_epsilons() -> None:
    assert parse_epsilons("0.1,0.5,1,2,5,10,inf") == [0.1, 0.5, 1.0, 2.0, 5.0, 10.0, None]
    assert parse_epsilons(" 3 , INF ") == [3.0, None]
    assert [epsilon_label(e) for e in (0.1, 1.0, 10.0, 0.25, None)] == [
        "0.1", "1", "10", "0.25", "inf"]


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1,1", "1,,2", "nan"])
def test_parse_epsilons_rejects_bad_values(text) -> None:
    with pytest.raises(UserError, match=r"^--dp-epsilon "):
        parse_epsilons(text)


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return small_federation(tmp_path_factory.mktemp("sweep"), n_patients=120, seed=6, hospitals=2)


@pytest.mark.parametrize("args, message", [
    (["--dp-epsilon", "1,abc"], "--dp-epsilon '1,abc': 'abc' is not a positive number"),
    (["--strategy", "nope"], "--strategy 'nope'"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--strategy", "vertical", "--audit"], "--audit: no party of a vertical run holds the model"),
])
def test_bad_input_fails_before_any_training(args, message, fed, tmp_path) -> None:
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", "--fed", str(fed), "--out", str(out), *args])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists() and not list(tmp_path.glob(".sweep*"))


def test_missing_federation(tmp_path) -> None:
    result = runner.invoke(app, ["sweep", "--fed", str(tmp_path / "none"), "--out",
                                 str(tmp_path / "s")])
    assert result.exit_code == 1 and "directory not found" in result.output
    assert not (tmp_path / "s").exists()


def test_sweep_trains_each_budget_and_plots_utility_against_epsilon(fed, tmp_path) -> None:
    base = TrainConfig(fed=str(fed), **{**SMALL, "local_epochs": 1})
    seen: list[tuple[str, float, float | None]] = []
    result = sweep(base, [2.0, None], tmp_path / "sweep", audit_runs=True,
                   progress=lambda task, done, total=None: seen.append((task, done, total)))
    out = result.out_dir
    assert {p.name for p in out.iterdir()} == {"eps_2", "eps_inf", "sweep.json", "sweep.csv",
                                               "sweep.md", "sweep.png", MARKER}
    rows = {r["label"]: r for r in result.rows}
    assert 1.5 < rows["2"]["epsilon_spent"] <= 2.0 + 1e-6
    assert rows["inf"]["epsilon_spent"] is None and rows["inf"]["epsilon_target"] is None
    for label in ("2", "inf"):
        metrics = json.loads((out / f"eps_{label}" / "test_metrics.json").read_text())
        assert rows[label]["macro_auroc"] == metrics["overall"]["macro"]["auroc"]
    privacy = json.loads((out / "eps_2" / "privacy.json").read_text())
    assert privacy["target_epsilon"] == 2.0
    assert json.loads((out / "eps_inf" / "privacy.json").read_text())["dp_sgd"] is False
    assert ("sweep: runs", 2, 2) in seen and ("ε = 2: rounds", 1, 1) in seen
    assert "| inf | no DP |" in (out / "sweep.md").read_text()
    # every run was attacked: the attack AUROC is the one its audit.json reports
    for label in ("2", "inf"):
        report = json.loads((out / f"eps_{label}" / "audit" / "audit.json").read_text())
        assert rows[label]["attack_auroc"] == report["overall"]["auroc"]["value"]
        assert 0.0 <= rows[label]["attack_auroc"] <= 1.0
    assert "attack AUROC" in (out / "sweep.md").read_text()
    assert [r["attack_auroc"] for r in json.loads((out / "sweep.json").read_text())["runs"]] \
        == [rows["2"]["attack_auroc"], rows["inf"]["attack_auroc"]]


def test_the_table_has_an_attack_column_only_when_the_runs_were_audited() -> None:
    row = {"label": "3", "epsilon_spent": 2.99, "macro_auroc": 0.8, "run": "eps_3"}
    plain = sweep_table([{**row, "attack_auroc": None}])
    assert plain.columns == ["ε target", "ε spent", "macro AUROC", "run"]
    assert plain.rows == [["3", 2.99, 0.8, "eps_3"]]
    audited = sweep_table([{**row, "attack_auroc": 0.51}])
    assert audited.columns == ["ε target", "ε spent", "macro AUROC", "attack AUROC", "run"]
    assert audited.rows == [["3", 2.99, 0.8, 0.51, "eps_3"]]
