"""Leave-one-hospital-out: retained/drop arithmetic, sub-federations, and (slow) end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from crypten_fl.cli.app import app
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.evaluate.cross_hospital import (
    METRICS,
    check_possible,
    retained,
    subfederation,
    summarise,
)
from crypten_fl.fedtrain.run.federation import read_federation
from crypten_fl.mimic_etl.hospital_data import load_split
from helpers.evaluate import read_metrics, signal_federation, trained_run
from helpers.federation import small_federation
from typer.testing import CliRunner

runner = CliRunner()


def test_retained_and_drop_by_hand() -> None:
    assert retained(0.8, 0.6, "auroc") == pytest.approx((75.0, 25.0))
    assert retained(0.5, 0.55, "f1") == pytest.approx((110.0, -10.0))  # better when unseen
    # MSE: lower is better, so a 25 % larger error is a 25 % drop
    assert retained(0.2, 0.25, "mse") == pytest.approx((125.0, 25.0))
    assert all(math.isnan(v) for v in retained(0.0, 0.3, "recall"))
    assert all(math.isnan(v) for v in retained(math.nan, 0.3, "auroc"))


def _macro(auroc: float, mse: float) -> dict[str, float]:
    return {m: auroc if m != "mse" else mse for m in METRICS}


def test_summary_averages_over_held_out_hospitals() -> None:
    folds = {0: {"seen": _macro(0.8, 0.20), "unseen": _macro(0.6, 0.30)},
             1: {"seen": _macro(0.7, 0.10), "unseen": _macro(0.7, 0.10)},
             2: {"seen": _macro(0.9, 0.30), "unseen": _macro(math.nan, 0.20)}}
    table = summarise(folds)
    auroc = table["summary"]["auroc"]
    assert auroc["seen"] == pytest.approx(0.8)
    assert auroc["unseen"] == pytest.approx(0.65)  # NaN of fold 2 skipped
    assert auroc["retained_pct"] == pytest.approx(81.25)
    assert auroc["drop_pct"] == pytest.approx(18.75)
    mse = table["summary"]["mse"]
    assert (mse["seen"], mse["unseen"]) == pytest.approx((0.2, 0.2))
    assert mse["retained_pct"] == pytest.approx(100.0) and mse["drop_pct"] == pytest.approx(0.0)
    assert table["per_hospital"]["hospital_0"]["auroc"]["retained_pct"] == pytest.approx(75.0)
    assert table["per_hospital"]["hospital_0"]["mse"]["drop_pct"] == pytest.approx(50.0)
    assert math.isnan(table["per_hospital"]["hospital_2"]["auroc"]["retained_pct"])


@pytest.fixture(scope="module")
def fed(tmp_path_factory) -> Path:
    return small_federation(tmp_path_factory.mktemp("loho"), n_patients=90, seed=5, hospitals=3)


def test_subfederation_links_the_other_hospitals_renumbered_without_copying(fed, tmp_path
                                                                           ) -> None:
    out = tmp_path / "without_1"
    index = subfederation(fed, 1, 3, out)
    assert index == {0: 0, 2: 1}
    assert sorted(p.name for p in out.iterdir()) == ["hospital_0", "hospital_1", "partition.json"]
    assert (out / "hospital_0").is_symlink() and (out / "hospital_1").is_symlink()
    assert (out / "hospital_1").resolve() == (fed / "hospital_2").resolve()
    meta = json.loads((out / "partition.json").read_text())
    assert meta["held_out_hospital"] == 1 and meta["hospital_map"] == {"0": 0, "1": 2}
    hospitals = read_federation(out, "horizontal")
    assert [h.index for h in hospitals] == [0, 1]
    original = load_split(fed / "hospital_2", "train")
    linked = load_split(out / "hospital_1", "train")
    assert list(linked.keys) == list(original.keys)


def test_vertical_runs_have_no_leave_one_hospital_out() -> None:
    with pytest.raises(UserError, match="--cross-hospital: a vertical run has no"):
        check_possible("vertical", 3)
    with pytest.raises(UserError, match="at least 2 hospitals"):
        check_possible("horizontal", 1)
    check_possible("fedper", 2)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["horizontal", "fedper"])
def test_cross_hospital_end_to_end(strategy, tmp_path) -> None:
    fed = signal_federation(tmp_path, n_patients=300)
    run = trained_run(fed, tmp_path / "run", strategy=strategy)
    result = runner.invoke(app, ["evaluate", "--run", str(run)])  # as after `make demo`
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", "--run", str(run), "--cross-hospital"])
    assert result.exit_code == 0, result.output
    assert "retained %" in result.output
    cross = read_metrics(run)["cross_hospital"]
    assert set(cross["per_hospital"]) == {"hospital_0", "hospital_1", "hospital_2"}
    for h, row in cross["per_hospital"].items():
        fold = cross["folds"][h]
        assert row["auroc"]["unseen"] == fold["unseen"]["macro"]["auroc"]
        assert row["auroc"]["seen"] == fold["seen"]["macro"]["auroc"]
        assert row["auroc"]["retained_pct"] == pytest.approx(
            100 * row["auroc"]["unseen"] / row["auroc"]["seen"])
        assert fold["unseen"]["unseen"] is True
        # the seen pool is the two training hospitals' test stays
        stays = sum(json.loads((fed / f"hospital_{k}" / "manifest.json").read_text())
                    ["counts"]["test"] for k in range(3) if f"hospital_{k}" != h)
        assert fold["seen"]["micro"]["n"] == stays
        fold_run = run / "eval" / fold["run"]
        config = json.loads((fold_run / "config.json").read_text())
        assert Path(config["fed"]).is_dir() and config["strategy"] == strategy
        assert all(p.is_symlink() for p in Path(config["fed"]).glob("hospital_*"))
    assert (run / "eval" / "cross_hospital_retained.png").stat().st_size > 0


def test_an_earlier_evaluation_is_extended_only_when_nothing_of_it_is_lost(tmp_path) -> None:
    """`--cross-hospital` right after `evaluate` replaces RUN/eval (it contains all of it); other
    settings, or dropping a leave-one-hospital-out part, need --overwrite."""
    from crypten_fl.fedtrain.evaluate.parties import EvalSettings
    from crypten_fl.fedtrain.evaluate.runner import _extends_earlier
    from crypten_fl.fedtrain.evaluate.thresholds import parse_rule

    out = tmp_path / "eval"
    out.mkdir()
    youden = EvalSettings(True, 1000, parse_rule("youden"))

    def earlier(mode="secure", bins=1000, rule="youden", cross_seed=None) -> None:
        report = {"evaluation": {"mode": mode, "bins": bins,
                                 "threshold_rule": str(parse_rule(rule))},
                  "cross_hospital": None if cross_seed is None else {"seed": cross_seed}}
        (out / "metrics.json").write_text(json.dumps(report))

    earlier()
    assert _extends_earlier(out, youden, cross_seed=7)  # evaluate, then --cross-hospital
    assert _extends_earlier(out, youden, cross_seed=None)  # the same evaluation again
    earlier(cross_seed=7)
    assert _extends_earlier(out, youden, cross_seed=7)
    assert not _extends_earlier(out, youden, cross_seed=8)  # other folds
    assert not _extends_earlier(out, youden, cross_seed=None)  # would drop the folds
    for other in ({"mode": "plain"}, {"bins": 500}, {"rule": "f1"}):
        earlier(**other)
        assert not _extends_earlier(out, youden, cross_seed=None), other
    (out / "metrics.json").write_text("{")
    assert not _extends_earlier(out, youden, cross_seed=None)
