"""What each party obtains in plaintext, per strategy, checked against what the strategy declares.

Every reveal of a secret-shared value is tagged (fedtrain/secure/reveal_audit.py). Each strategy is
run for one round with auditing on; the kinds of plaintext each party obtained (reveals to all, or
to it) must be exactly the strategy's declared ``receives`` (docs/strategies.md), and nothing may
be revealed untagged. With ``--central-dp`` no party may obtain an un-noised sum of models.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.secure import tags
from helpers.federation import TINY_MODEL, both_federations

SMALL = {"rounds": 1, **TINY_MODEL}
TO_ONE = {tags.OWN_ROW_LOGITS, tags.OWN_CUT_GRADIENT, tags.JOINT_LOGITS_TO_LABEL_PARTY,
          tags.OWN_BOTTOM_GRADIENT}


@pytest.fixture(scope="module")
def feds(tmp_path_factory) -> dict[str, Path]:
    return both_federations(tmp_path_factory.mktemp("reveal-feds"), n_patients=150, seed=2)


def _obtained(audit: Path, rank: int) -> list[dict]:
    lines = (audit / f"reveals_{rank}.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    return [r for r in records if r["dst"] is None or r["dst"] == rank]


def _audited_kinds(config: TrainConfig, tmp_path: Path, monkeypatch) -> list[set[str]]:
    """Train with the reveal audit on; the kinds of plaintext each party obtained."""
    audit = tmp_path / "audit"
    audit.mkdir()
    monkeypatch.setenv("CRYPTEN_FL_AUDIT", str(audit))
    train(config, tmp_path / "run")
    kinds = []
    for rank in range(3):
        obtained = _obtained(audit, rank)
        # what is meant for one party is never revealed to all
        assert all(r["dst"] == rank for r in obtained if r["tag"] in TO_ONE)
        kinds.append({r["tag"] for r in obtained})
    return kinds


def _check_declared(kinds: list[set[str]], declared: frozenset[str]) -> None:
    for rank, obtained in enumerate(kinds):
        assert "UNTAGGED" not in obtained
        assert obtained <= declared, f"party {rank} obtained {obtained - declared}"
    assert set().union(*kinds) == declared


#: every registered strategy with a process per hospital (the pooled baseline has one process
#: and no reveals between hospitals): a new strategy is audited without this file knowing it
FEDERATED = [n for n in strategies.available() if not strategies.get(n).single_process]
#: every strategy that takes --central-dp (one of them only in make
#: test-slow: fedper runs horizontal's code path)
CENTRAL_DP = [pytest.param(n, marks=(pytest.mark.slow,) if n == "fedper" else ())
                  for n in strategies.available() if strategies.get(n).supports_central_dp]


@pytest.mark.parametrize("name", FEDERATED)
def test_parties_obtain_exactly_what_the_strategy_declares(name, feds, tmp_path, monkeypatch
                                                           ) -> None:
    cls = strategies.get(name)
    config = TrainConfig(fed=str(feds[cls.partition]), strategy=name, **SMALL)
    kinds = _audited_kinds(config, tmp_path, monkeypatch)
    _check_declared(kinds, cls.receives_with(config))
    if tags.JOINT_LOGITS_TO_LABEL_PARTY in cls.receives:  # the label party (rank 0) only
        assert all(tags.JOINT_LOGITS_TO_LABEL_PARTY not in k for k in kinds[1:])


@pytest.mark.parametrize("name", CENTRAL_DP)
def test_with_central_dp_only_the_noisy_sum_of_updates_is_ever_revealed(name, feds, tmp_path,
                                                                       monkeypatch) -> None:
    dp_sgd = 3.0 if name == "fedmtl" else None  # central DP combines with DP-SGD
    config = TrainConfig(fed=str(feds["horizontal"]), strategy=name, central_dp=True,
                         central_noise_multiplier=1.0, dp_epsilon=dp_sgd, **SMALL)
    kinds = _audited_kinds(config, tmp_path, monkeypatch)
    _check_declared(kinds, strategies.get(name).receives_with(config))
    for obtained in kinds:  # never the un-noised (weighted) sum, nor the exact mean of heads
        assert tags.NOISY_MODEL_SUM in obtained
        assert not obtained & {tags.WEIGHTED_MODEL_SUM, tags.MEAN_OF_HEADS}
    record = json.loads((tmp_path / "run" / "privacy.json").read_text())["central_dp"]
    record_level = record["record_level_dp_sgd_epsilon"]
    assert record_level is None if dp_sgd is None else (
        len(record_level) == 3 and all(0 < e <= dp_sgd + 1e-6 for e in record_level.values()))


def test_vertical_with_dp_reveals_logits_of_validation_and_test_stays_only(feds, tmp_path,
                                                                           monkeypatch) -> None:
    """With --dp-epsilon vertical trains under encryption: no party obtains a bottom gradient,
    and the label party obtains the logits of exactly the aligned validation stays (each round)
    and test stays (the run's final evaluation) — none of a training stay."""
    from crypten_fl.mimic_etl.hospital_data import load_split

    config = TrainConfig(fed=str(feds["vertical"]), strategy="vertical", dp_epsilon=4.0,
                         **{**SMALL, "rounds": 2})
    kinds = _audited_kinds(config, tmp_path, monkeypatch)
    declared = strategies.get("vertical").receives_with(config)
    assert tags.OWN_BOTTOM_GRADIENT not in declared
    _check_declared(kinds, declared)
    parties = sorted(feds["vertical"].glob("hospital_*"))

    def aligned(split: str) -> int:
        keys = [set(load_split(p, split).keys.tolist()) for p in parties]
        return len(set.intersection(*keys))

    logits = [r for r in _obtained(tmp_path / "audit", 0)
              if r["tag"] == tags.JOINT_LOGITS_TO_LABEL_PARTY]
    labels = len(load_split(parties[0], "train").label_names)
    assert sum(r["elements"] for r in logits) == labels * (2 * aligned("val") + aligned("test"))


@pytest.mark.parametrize("name", ["split", "vertical"])
def test_with_a_two_layer_encrypted_model_the_relus_openings_are_masked(name, feds, tmp_path,
                                                                        monkeypatch) -> None:
    """The encrypted ReLU's comparisons open masked values only (tagged by the audit)."""
    cls = strategies.get(name)
    config = TrainConfig(fed=str(feds[cls.partition]), strategy=name,
                         **{**SMALL, "cut": 2, "head_hidden": 8})
    kinds = _audited_kinds(config, tmp_path, monkeypatch)
    assert tags.MASKED_OPENINGS in cls.receives_with(config)
    _check_declared(kinds, cls.receives_with(config))
