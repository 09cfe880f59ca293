"""Checks shared by the tests of split's and vertical's DP mechanisms: the accounting of a
party's privacy report, and that ``evaluate`` of a vertical DP run predicts as its training did."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from crypten_fl.fedtrain.evaluate.runner import EvalOptions, evaluate
from crypten_fl.fedtrain.local_training.dp_exchange import ALPHAS, epsilon
from opacus.accountants import RDPAccountant


def opacus_rdp_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    """Opacus' add/remove RDP ε of ``steps`` Gaussian steps of multiplier ``sigma``, rate ``q``."""
    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    return float(accountant.get_epsilon(delta, alphas=ALPHAS))


def check_exchange_accounting(report: dict, target: float, planned_steps: int) -> None:
    """privacy.json's report of one party: ε is the replace-one accountant's for the steps
    planned, within 0.01 below the target, and Opacus' add/remove ε is given beside it."""
    assert report["secure_rng"] is True and report["steps"] == planned_steps
    q, sigma, delta = report["sample_rate"], report["combined_noise_multiplier"], report["delta"]
    assert report["epsilon"] == epsilon(q, sigma, planned_steps, delta)
    assert target - 0.01 <= report["epsilon"] <= target
    assert report["epsilon_add_remove"] == opacus_rdp_epsilon(sigma, q, planned_steps, delta)
    assert report["noise_multiplier"] == pytest.approx(
        sigma * math.sqrt(report["mechanisms_per_step"]))


def check_evaluate_predicts_as_trained(run: Path) -> None:
    """``evaluate`` of a vertical DP run gives the test AUROC its training reported."""
    evaluate(EvalOptions(run=run, secure=False, threshold="0.5"))
    trained = json.loads((run / "test_metrics.json").read_text())["per_hospital"]
    evaluated = json.loads((run / "eval" / "metrics.json").read_text())["per_hospital"]
    for hospital, metrics in trained.items():
        assert evaluated[hospital]["macro"]["auroc"] == pytest.approx(
            metrics["macro"]["auroc"], abs=2e-3)
