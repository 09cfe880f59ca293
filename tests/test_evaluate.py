"""`crypten-fl evaluate` with real hospital processes on a tiny trained run.

One horizontal run is trained once; each evaluation works on its own copy of it. Checked: the
report files, secure == plain at the same thresholds (AUROC within 0.002), the evaluation
reproducing training's per-hospital test AUROC, the reveal audit, a held-out hospital, and bad
input failing with one line before any process starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.outdir import MARKER
from crypten_fl.fedtrain.evaluate.parties import EvalSettings, evaluate_parties
from crypten_fl.fedtrain.evaluate.runner import EvalOptions, evaluate
from crypten_fl.fedtrain.evaluate.runs import open_run
from crypten_fl.fedtrain.evaluate.subgroups import SUBGROUPS
from crypten_fl.fedtrain.evaluate.summary import summary_length
from crypten_fl.fedtrain.evaluate.thresholds import parse_rule
from crypten_fl.fedtrain.secure import tags
from helpers.evaluate import copy_run, read_metrics, signal_federation, trained_run
from typer.testing import CliRunner

runner = CliRunner()
CONFUSION = ("accuracy", "precision", "recall", "f1", "specificity")
FILES = {"metrics.json", "metrics.csv", "tables.md", "roc_curves.png", "hospital_auroc.png",
         "subgroup_auroc.png"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def fed(root) -> Path:
    return signal_federation(root)


@pytest.fixture(scope="module")
def trained(fed, root) -> Path:
    return trained_run(fed, root / "run", seed=3)


@pytest.fixture(scope="module")
def secure(trained, root) -> tuple[Path, Path, str]:
    """A secure (default) evaluation through the CLI, with the reveal audit on."""
    run, audit = copy_run(trained, root / "secure"), root / "audit"
    audit.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRYPTEN_FL_AUDIT", str(audit))
        result = runner.invoke(app, ["evaluate", "--run", str(run)])
    assert result.exit_code == 0, result.output
    return run, audit, result.output


@pytest.fixture(scope="module")
def plain(trained, root) -> Path:
    run = copy_run(trained, root / "plain")
    evaluate(EvalOptions(run=run, secure=False))
    return run


def _test_stays(fed: Path) -> list[int]:
    return [json.loads((fed / f"hospital_{k}" / "manifest.json").read_text())["counts"]["test"]
            for k in range(3)]


def test_secure_evaluation_writes_the_report(secure, fed) -> None:
    run, _, output = secure
    assert {p.name for p in (run / "eval").iterdir()} == {*FILES, MARKER}
    for title in ("test metrics per disease", "macro averages per hospital",
                  "macro averages per subgroup", "report written to"):
        assert title in output
    report = read_metrics(run)
    assert report["evaluation"]["mode"] == "secure"
    assert report["evaluation"]["threshold_rule"] == "youden"
    assert len(report["label_names"]) == 12 and set(report["thresholds"]) == set(
        report["label_names"])
    stays = _test_stays(fed)
    assert report["overall"]["micro"]["n"] == sum(stays)
    assert [report["per_hospital"][f"hospital_{k}"]["n"] for k in range(3)] == stays
    for family in ("age", "sex", "race"):  # every family partitions the test stays
        assert sum(m["micro"]["n"] for m in report["subgroups"][family].values()) == sum(stays)
    assert report["overall"]["macro"]["auroc"] > 0.6  # the fixture model learned something
    rows = (run / "eval" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + (1 + 3 + len(SUBGROUPS)) * (12 + 2)
    assert "| macro |" in (run / "eval" / "tables.md").read_text()
    assert not list(run.glob(".eval*"))  # no temporary directory left


def test_secure_equals_plain_at_the_same_thresholds(secure, plain) -> None:
    s, p = read_metrics(secure[0]), read_metrics(plain)
    assert p["evaluation"]["mode"] == "plain" and "insecure" in p["evaluation"]["method"]
    assert s["thresholds"] == p["thresholds"]  # same rule on the same pooled validation scores
    for name in s["label_names"]:
        a, b = s["overall"]["labels"][name], p["overall"]["labels"][name]
        assert {k: a[k] for k in (*CONFUSION, "n", "positives")} == \
            {k: b[k] for k in (*CONFUSION, "n", "positives")}
        assert a["mse"] == pytest.approx(b["mse"], abs=1e-6)  # fixed-point sum of squared errors
        assert abs(a["auroc"] - b["auroc"]) < 0.002  # binned vs exact (= sklearn's)
    for k in CONFUSION:
        assert s["overall"]["micro"][k] == p["overall"]["micro"][k]
    assert s["per_hospital"] == p["per_hospital"]  # each hospital's own, exact, same thresholds
    for family, groups in s["subgroups"].items():
        for group, m in groups.items():
            q = p["subgroups"][family][group]
            assert m["micro"]["n"] == q["micro"]["n"]
            for k in CONFUSION:
                assert m["macro"][k] == pytest.approx(q["macro"][k], abs=1e-12, nan_ok=True)


def test_evaluation_reproduces_the_per_hospital_auroc_of_training(plain) -> None:
    trained = json.loads((plain / "test_metrics.json").read_text())["per_hospital"]
    evaluated = read_metrics(plain)["per_hospital"]
    for h, metrics in trained.items():
        for name, m in metrics["labels"].items():
            assert evaluated[h]["labels"][name]["auroc"] == pytest.approx(m["auroc"], abs=1e-12,
                                                                          nan_ok=True)


def test_hospitals_obtain_only_summed_histograms_and_counts(secure, fed) -> None:
    _, audit, _ = secure
    n_labels, bins, n_features = 12, 1000, 6
    expected = sorted([
        (tags.MOMENTS, 3 * (n_features + 2)),
        (tags.EVAL_VALIDATION_HISTOGRAMS, 2 * n_labels * bins),
        (tags.EVAL_TEST_SUMMARY, summary_length(n_labels, bins) * (1 + len(SUBGROUPS))),
    ])
    for rank in range(3):
        records = [json.loads(x) for x in
                   (audit / f"reveals_{rank}.jsonl").read_text().splitlines()]
        assert all(r["dst"] is None for r in records)  # sums revealed to all, nothing to one
        assert sorted((r["tag"], r["elements"]) for r in records) == expected


def test_a_held_out_hospital_contributes_nothing_to_the_pooled_results(trained, root) -> None:
    info = open_run(trained)
    settings = EvalSettings(secure=True, bins=200, rule=parse_rule("f1"))
    result = evaluate_parties(info, trained, settings, subgroups=False,
                              model_index={0: 0, 1: 1, 2: None},
                              workdir=root / "unseen-parties")
    assert result.per_hospital["hospital_2"]["unseen"] is True
    assert not result.per_hospital["hospital_0"]["unseen"]
    members = [result.per_hospital[f"hospital_{k}"] for k in (0, 1)]
    assert result.pooled["micro"]["n"] == sum(m["n"] for m in members)
    for name, m in result.pooled["labels"].items():
        assert m["positives"] == sum(h["labels"][name]["positives"] for h in members)
    assert not (root / "unseen-parties").exists()


def test_an_existing_report_is_kept_without_overwrite(secure) -> None:
    run = secure[0]
    before = (run / "eval" / "metrics.json").read_bytes()
    result = runner.invoke(app, ["evaluate", "--run", str(run), "--plain"])
    assert result.exit_code == 1 and "use --overwrite" in result.output
    assert (run / "eval" / "metrics.json").read_bytes() == before


def _fake_vertical_run(trained: Path, dest: Path) -> Path:
    dest.mkdir()
    config = json.loads((trained / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**config, "strategy": "vertical"}))
    return dest


@pytest.mark.parametrize("case, args, message", [
    ("missing", [], "directory not found"),
    ("no-model", [], "model.safetensors: file not found"),
    ("copy", ["--threshold", "abc"], "--threshold 'abc': expected youden, f1 or a number"),
    ("copy", ["--threshold", "1.5"], "--threshold '1.5'"),
    ("copy", ["--bins", "1"], "--bins 1: must be between 2"),
    ("vertical", ["--cross-hospital"], "--cross-hospital: a vertical run has no"),
])
def test_bad_input_fails_with_one_line_and_leaves_nothing(case, args, message, trained,
                                                          tmp_path) -> None:
    run = tmp_path / "run"
    if case == "no-model":
        copy_run(trained, run)
        (run / "model.safetensors").unlink()
    elif case == "copy":
        copy_run(trained, run)
    elif case == "vertical":
        _fake_vertical_run(trained, run)
    result = runner.invoke(app, ["evaluate", "--run", str(run), *args])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (run / "eval").exists() and not list(tmp_path.glob("**/.eval*"))

