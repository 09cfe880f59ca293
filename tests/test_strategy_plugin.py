"""A strategy is one module: registered from a package crypten-fl has never heard of, it trains,
evaluates, is audited and passes the reveal audit, and no file of crypten-fl knows its name.

The plug-in lives in a temporary directory: a package with one module and the distribution
metadata that declares its entry point in the group ``crypten_fl.strategies`` (what ``pip
install`` of a real plug-in writes). Every layer asks the strategy class what it is and can do.
"""

from __future__ import annotations

import importlib
import json
import textwrap
from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.evaluate.runner import EvalOptions, evaluate
from crypten_fl.fedtrain.privacy.audit import AuditOptions, audit
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.secure import tags
from crypten_fl.mimic_etl.partition.pipeline import partition
from helpers.federation import TINY_MODEL, small_federation

NAME = "heads_only"
MODULE = '''
"""Heads-only averaging: the inverse of FedPer (each hospital keeps its encoder)."""

from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.strategies.base import ParameterSharing


class HeadsOnly(ParameterSharing):
    """Share the classification head (secure weighted mean); keep the encoder local."""

    name = "heads_only"
    summary = "shared head, a personal encoder per hospital"
    personalised = True
    shares_updates = True
    supports_central_dp = True
    tolerates_dropouts = True
    receives = frozenset({tags.MOMENTS, tags.WEIGHTED_MODEL_SUM, tags.METRIC_HISTOGRAMS})
    reveals = "to all hospitals, each round: the weighted sum of the head parameters"

    def is_shared(self, key: str) -> bool:
        return key.startswith("head.")
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Install the plug-in for this process and every process it starts."""
    root = tmp_path / "site"
    package = root / "cfl_plugin_demo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "heads_only.py").write_text(textwrap.dedent(MODULE))
    meta = root / "cfl_plugin_demo-0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: cfl-plugin-demo\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text(
        f"[crypten_fl.strategies]\n{NAME} = cfl_plugin_demo.heads_only:HeadsOnly\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))  # the party processes
    importlib.invalidate_caches()
    strategies.refresh()
    yield NAME
    strategies.refresh()


def test_no_file_of_crypten_fl_names_the_plugin() -> None:
    repo = Path(__file__).resolve().parents[1]
    sources = [p for d in ("fedtrain", "cli", "mimic_etl", "sql") for p in (repo / d).rglob("*")
               if p.is_file() and p.suffix in (".py", ".sql", ".toml", ".yaml")]
    assert sources and not [p for p in sources if NAME in p.read_text()]


def test_a_plugin_strategy_trains_evaluates_is_audited_and_reveals_what_it_declares(
        plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert plugin in strategies.available()
    cls = strategies.get(plugin)
    fed = small_federation(tmp_path / "f", n_patients=120, seed=4, hospitals=3)
    reveals = tmp_path / "reveals"
    reveals.mkdir()
    monkeypatch.setenv("CRYPTEN_FL_AUDIT", str(reveals))
    run = tmp_path / "run"
    summary = train(TrainConfig(fed=str(fed), strategy=plugin, rounds=2, **TINY_MODEL), run)
    monkeypatch.delenv("CRYPTEN_FL_AUDIT")
    # trained, and what crossed hospital boundaries is exactly what the class declares
    assert summary.rounds_completed == 2
    for rank in range(3):
        obtained = {json.loads(x)["tag"] for x in
                    (reveals / f"reveals_{rank}.jsonl").read_text().splitlines()}
        assert obtained == cls.receives, rank
    # personalised: each hospital saved, is evaluated and audited with its own model
    assert sorted(p.name for p in run.glob("model_hospital_*.safetensors")) == [
        f"model_hospital_{k}.safetensors" for k in range(3)]
    report = evaluate(EvalOptions(run=run)).report
    assert set(report["per_hospital"]) == {"hospital_0", "hospital_1", "hospital_2"}
    assert tags.METRIC_HISTOGRAMS in cls.receives
    audited = audit(AuditOptions(run=run, bootstrap=50)).report
    assert {h["model"] for h in audited["per_hospital"].values()} == {
        f"model_hospital_{k}.safetensors" for k in range(3)}
    # the traits reach the checks made before any process starts
    partition(tmp_path / "f" / "cohort", tmp_path / "vfed", hospitals=None, vertical=True)
    with pytest.raises(UserError, match=f"--strategy {plugin} needs a horizontal partition"):
        train(TrainConfig(fed=str(tmp_path / "vfed"), strategy=plugin, **TINY_MODEL),
              tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_an_unknown_strategy_names_the_registered_ones() -> None:
    with pytest.raises(UserError) as err:
        strategies.get("gossip")
    names = ", ".join(strategies.available())
    assert str(err.value) == f"--strategy 'gossip': choose one of {names}"
