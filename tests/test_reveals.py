"""What each party obtains in plaintext, per strategy, checked against what the strategy declares.

Every reveal of a secret-shared value is tagged (fedtrain/secure/audit.py). Each strategy is run
for one round with auditing on; the kinds of plaintext each party obtained (reveals to all, or
to it) must be exactly the strategy's declared ``receives`` (docs/strategies.md), and nothing may
be revealed untagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.federation import TINY_MODEL, small_federation

from fedtrain import strategies
from fedtrain.run.config import TrainConfig
from fedtrain.run.coordinator import train
from fedtrain.secure import tags
from mimic_etl.partition.pipeline import partition

SMALL = {"rounds": 1, **TINY_MODEL}
TO_ONE = {tags.OWN_ROW_LOGITS, tags.OWN_CUT_GRADIENT, tags.JOINT_LOGITS_TO_LABEL_PARTY,
          tags.OWN_BOTTOM_GRADIENT}


@pytest.fixture(scope="module")
def feds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reveal-feds")
    small_federation(root, n_patients=150, seed=2, hospitals=3)
    partition(root / "cohort", root / "vfed", hospitals=None, vertical=True, seed=0)
    return {"horizontal": root / "fed", "vertical": root / "vfed"}


def _obtained(audit: Path, rank: int) -> list[dict]:
    lines = (audit / f"reveals_{rank}.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    return [r for r in records if r["dst"] is None or r["dst"] == rank]


@pytest.mark.parametrize("name", ["horizontal", "local", "fedper", "fedmtl", "split",
                                  "vertical"])
def test_parties_obtain_exactly_what_the_strategy_declares(name, feds, tmp_path, monkeypatch
                                                           ) -> None:
    audit = tmp_path / "audit"
    audit.mkdir()
    monkeypatch.setenv("CRYPTEN_FL_AUDIT", str(audit))
    fed = feds["vertical" if name == "vertical" else "horizontal"]
    train(TrainConfig(fed=str(fed), strategy=name, **SMALL), tmp_path / "run")
    declared = strategies.get(name).receives
    union: set[str] = set()
    for rank in range(3):
        obtained = _obtained(audit, rank)
        kinds = {r["tag"] for r in obtained}
        assert "UNTAGGED" not in kinds
        assert kinds <= declared, f"party {rank} obtained {kinds - declared}"
        # what is meant for one party is never revealed to all
        assert all(r["dst"] == rank for r in obtained if r["tag"] in TO_ONE)
        union |= kinds
        if name == "vertical" and rank != 0:
            assert tags.JOINT_LOGITS_TO_LABEL_PARTY not in kinds
    assert union == declared
