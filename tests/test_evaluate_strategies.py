"""Evaluate runs of every strategy (slow: one training per strategy).

The plain evaluation must reproduce training's per-hospital test AUROC exactly, which shows that
each hospital loaded the right final model and rebuilt the same normalisation; the secure one
must reveal only what evaluation declares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crypten_fl.fedtrain.evaluate.parties import EvalSettings, evaluate_parties
from crypten_fl.fedtrain.evaluate.runner import EvalOptions, evaluate
from crypten_fl.fedtrain.evaluate.runs import open_run
from crypten_fl.fedtrain.evaluate.thresholds import parse_rule
from crypten_fl.fedtrain.secure import tags
from helpers.evaluate import copy_run, read_metrics, signal_federation, trained_run

pytestmark = pytest.mark.slow
EVALUATION = {tags.MOMENTS, tags.EVAL_VALIDATION_HISTOGRAMS, tags.EVAL_TEST_SUMMARY}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("strategies")
    signal_federation(root, n_patients=300)
    signal_federation(root, vertical=True)
    return root


def _obtained(audit: Path, rank: int) -> set[str]:
    records = [json.loads(x) for x in (audit / f"reveals_{rank}.jsonl").read_text().splitlines()]
    return {r["tag"] for r in records if r["dst"] in (None, rank)}


@pytest.mark.parametrize("strategy, dp", [
    ("local", None), ("fedper", None), ("fedmtl", None), ("split", None), ("centralized", None),
    ("vertical", None), ("horizontal", 5.0), ("vertical", 5.0)])  # DP models reload too
def test_evaluation_of_each_strategy(strategy, dp, root, tmp_path, monkeypatch) -> None:
    fed = root / ("vfed" if strategy == "vertical" else "fed")
    options = {"dp_epsilon": dp} if dp is not None else {}
    run = trained_run(fed, tmp_path / "run", strategy=strategy, **options)
    plain = copy_run(run, tmp_path / "plain")
    evaluate(EvalOptions(run=plain, secure=False, threshold="0.5"))
    trained = json.loads((run / "test_metrics.json").read_text())["per_hospital"]
    evaluated = read_metrics(plain)["per_hospital"]
    assert set(evaluated) == set(trained)
    # vertical: the encrypted top model's fixed-point truncation is randomised (±2^-16 per
    # product), so logits differ in the last bits between two forward passes
    auroc_tol, f1_tol = (2e-3, 2e-2) if strategy == "vertical" else (1e-9, 1e-9)
    for h, metrics in trained.items():
        for name, m in metrics["labels"].items():
            assert evaluated[h]["labels"][name]["auroc"] == pytest.approx(
                m["auroc"], abs=auroc_tol, nan_ok=True), (h, name)
            assert evaluated[h]["labels"][name]["f1"] == pytest.approx(m["f1"], abs=f1_tol)
    audit = tmp_path / "audit"
    audit.mkdir()
    monkeypatch.setenv("CRYPTEN_FL_AUDIT", str(audit))
    report = evaluate(EvalOptions(run=run)).report
    for rank in range(3):
        kinds = _obtained(audit, rank)
        if strategy == "vertical":  # normalised locally; logits reach the label party only
            expected = EVALUATION - {tags.MOMENTS} | (
                {tags.JOINT_LOGITS_TO_LABEL_PARTY} if rank == 0 else set())
        else:
            expected = EVALUATION
        assert kinds == expected, rank
    assert (report["subgroups"] is None) == (strategy == "vertical")


def test_an_unseen_hospital_of_a_personalised_strategy_gets_the_mean_model(root, tmp_path,
                                                                           monkeypatch) -> None:
    run = trained_run(root / "fed", tmp_path / "run", strategy="fedper")
    audit = tmp_path / "audit"
    audit.mkdir()
    monkeypatch.setenv("CRYPTEN_FL_AUDIT", str(audit))
    result = evaluate_parties(open_run(run), run, EvalSettings(True, 1000, parse_rule("youden")),
                              subgroups=False, model_index={0: 0, 1: None, 2: 2})
    assert result.per_hospital["hospital_1"]["unseen"] is True
    assert 0.5 < result.per_hospital["hospital_1"]["macro"]["auroc"] < 1.0
    for rank in range(3):
        assert _obtained(audit, rank) == EVALUATION | {tags.UNSEEN_HOSPITAL_MODEL}
