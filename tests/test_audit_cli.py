"""`crypten-fl audit` end to end with real hospital processes on a tiny memorising run.

Checked: the files and JSON fields, the hospitals opening only their own directory, the reveals
(the moments of training and one histogram sum), a memorised model leaking clearly while the same
model trained with DP-SGD at ε = 1 leaks less, the shadow attack, compare's audit columns, and
bad input failing with one line before any process starts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.outdir import MARKER
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.experiments.compare import read_run
from crypten_fl.fedtrain.privacy.audit import AuditOptions, audit
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.secure import tags
from helpers.audit import HELPERS_ENV, MEMORISE, SPY_DIR_ENV, SPYING_JOB
from helpers.federation import small_federation
from typer.testing import CliRunner

runner = CliRunner()
FILES = {"audit.json", "audit.csv", "audit.md", "audit_roc.png"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audit")


@pytest.fixture(scope="module")
def fed(root) -> Path:
    return small_federation(root, n_patients=200, seed=3, hospitals=2)


@pytest.fixture(scope="module")
def memorised(fed, root) -> Path:
    train(TrainConfig(fed=str(fed), seed=1, **MEMORISE), root / "memorised")
    return root / "memorised"


@pytest.fixture(scope="module")
def cli_audit(memorised, root) -> tuple[dict, str, Path]:
    """The loss audit through the CLI, with the reveal audit on."""
    reveals = root / "reveals"
    reveals.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRYPTEN_FL_AUDIT", str(reveals))
        result = runner.invoke(app, ["audit", "--run", str(memorised), "--seed", "5",
                                     "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads((memorised / "audit" / "audit.json").read_text())
    return report, result.output, reveals


def test_audit_writes_its_files_and_fields(cli_audit, memorised) -> None:
    report, output, _ = cli_audit
    assert {p.name for p in (memorised / "audit").iterdir()} == {*FILES, MARKER}
    assert "membership inference (loss attack) on horizontal" in output
    assert "audit written to" in output
    assert report["strategy"] == "horizontal" and report["attack"]["name"] == "loss"
    assert report["options"]["seed"] == 5 and report["options"]["hospitals"] == [0, 1]
    assert set(report["per_hospital"]) == {"hospital_0", "hospital_1"}
    total = 0
    for h in report["per_hospital"].values():
        assert h["model"] == "model.safetensors"
        assert h["members"] == h["non_members"] == sum(h["pairs_per_stratum"].values()) >= 10
        assert len(h["auroc"]["ci"]) == 2 and set(h["tpr_at_fpr"]) == {"0.001", "0.01"}
        assert h["tpr_at_fpr"]["0.001"]["resolved"] is False  # far fewer than 1000 stays
        total += h["members"]
    overall = report["overall"]
    assert overall["members"] == overall["non_members"] == total  # from the summed histograms
    assert overall["epsilon_lower_bound"]["value"] >= 0.0
    rows = (memorised / "audit" / "audit.csv").read_text().splitlines()
    assert rows[0].startswith("population,model,members") and len(rows) == 4
    assert rows[3].startswith("overall,")


def test_a_memorised_model_leaks_membership(cli_audit) -> None:
    overall = cli_audit[0]["overall"]
    assert overall["auroc"]["value"] > 0.7
    assert overall["auroc"]["ci"][0] > 0.5


def test_each_hospital_reveals_only_the_moments_and_the_histogram_sum(cli_audit) -> None:
    _, _, reveals = cli_audit
    for rank in (0, 1):
        lines = [json.loads(x) for x in (reveals / f"reveals_{rank}.jsonl").read_text()
                 .splitlines()]
        assert [r["tag"] for r in lines] == [tags.MOMENTS, tags.AUDIT_HISTOGRAMS]
        assert lines[1]["dst"] is None and lines[1]["elements"] == 2 * 8000


def test_each_hospital_opens_only_its_own_directory_and_the_seed_fixes_the_audit(
        memorised, root, cli_audit) -> None:
    spy = root / "spy"
    spy.mkdir()
    again = audit(AuditOptions(run=memorised, out=root / "spied", seed=5, bootstrap=200),
                  job=SPYING_JOB, env={**HELPERS_ENV, SPY_DIR_ENV: str(spy)})
    for k in (0, 1):
        assert json.loads((spy / f"touched_{k}.json").read_text()) == [f"hospital_{k}"]
    assert again.report["per_hospital"] == cli_audit[0]["per_hospital"]
    assert again.report["overall"] == cli_audit[0]["overall"]


@pytest.mark.slow
def test_dp_sgd_at_epsilon_one_leaks_less(fed, root, cli_audit) -> None:
    run = root / "dp1"
    train(TrainConfig(fed=str(fed), seed=1, dp_epsilon=1.0, **MEMORISE), run)
    report = audit(AuditOptions(run=run, bootstrap=0)).report
    assert report["dp"]["dp_sgd"] and report["dp"]["target_epsilon"] == 1.0
    assert report["per_hospital"]["hospital_0"]["delta"] == pytest.approx(
        json.loads((run / "privacy.json").read_text())["hospitals"]["0"]["delta"])
    no_dp = cli_audit[0]["overall"]["auroc"]["value"]
    assert report["overall"]["auroc"]["value"] < no_dp - 0.15


@pytest.mark.slow
def test_shadow_attack_with_reference_models(memorised, root) -> None:
    report = audit(AuditOptions(run=memorised, out=root / "shadow", attack="shadow",
                                references=2, reference_epochs=3, bootstrap=0,
                                hospitals=[1])).report
    assert report["attack"]["name"] == "shadow" and report["attack"]["reference_models"] == 2
    assert list(report["per_hospital"]) == ["hospital_1"]
    h = report["per_hospital"]["hospital_1"]
    assert h["reference_pool"] > 20 and report["overall"]["members"] == h["members"]
    assert 0.0 <= h["auroc"]["value"] <= 1.0


def test_compare_shows_the_audit_columns(memorised, root, cli_audit) -> None:
    plain = root / "not-audited"
    shutil.copytree(memorised, plain, ignore=shutil.ignore_patterns("checkpoints", "audit"))
    audited, blank = read_run(memorised), read_run(plain)
    overall = cli_audit[0]["overall"]
    assert audited["attack"] == "loss"
    assert audited["attack_auroc"] == overall["auroc"]["value"]
    assert audited["attack_tpr_at_1pct_fpr"] == overall["tpr_at_fpr"]["0.01"]["value"]
    assert audited["epsilon_lower_bound"] == overall["epsilon_lower_bound"]["value"]
    assert blank["attack"] is None and blank["attack_auroc"] is None
    result = runner.invoke(app, ["compare", str(memorised), str(plain), "--out",
                                 str(root / "cmp")])
    assert result.exit_code == 0, result.output
    table = (root / "cmp" / "compare.md").read_text()
    assert "| attack | attack AUROC | TPR@1%FPR | ε lb | ε spent |" in table
    assert f"| loss | {overall['auroc']['value']:.3f} |" in table
    assert "|  |  |  |  | no DP |" in table


@pytest.mark.parametrize(("args", "message"), [
    (["--attack", "gradient"], "--attack 'gradient': choose one of loss, shadow"),
    (["--hospitals", "0,7"], "--hospitals: no hospital 7"),
    (["--hospitals", "x"], "--hospitals 'x'"),
    (["--references", "1", "--attack", "shadow"], "--references must be >= 2"),
])
def test_bad_options_fail_with_one_line(memorised, args, message) -> None:
    result = runner.invoke(app, ["audit", "--run", str(memorised), "--out", "/nonexistent/x",
                                 *args])
    assert result.exit_code == 1 and message in result.output


def test_existing_output_and_vertical_runs_are_refused(memorised, cli_audit, tmp_path) -> None:
    result = runner.invoke(app, ["audit", "--run", str(memorised)])
    assert result.exit_code == 1 and "use --overwrite" in result.output
    vertical = tmp_path / "vrun"
    vertical.mkdir()
    (vertical / "config.json").write_text(json.dumps({"fed": "x", "strategy": "vertical"}))
    result = runner.invoke(app, ["audit", "--run", str(vertical)])
    assert result.exit_code == 1 and "cannot be audited by one party" in result.output
