"""Vertical learning under DP from a public feature map (``--init-from``): each party's block
mapped by a logistic regression fitted on its own columns of the public stays, saved with its
model, accounted as before; the public rows are checked and laid out exactly as a party's."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import static_width
from crypten_fl.fedtrain.experiments.sweep import sweep
from crypten_fl.fedtrain.models import public_features
from crypten_fl.fedtrain.models.pretrained import Pretrained, read_pretrained, state_digest
from crypten_fl.fedtrain.models.public_features import PublicProjection, PublicRows
from crypten_fl.fedtrain.models.stay_summary import stay_summary
from crypten_fl.fedtrain.pretraining import pretrain
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.run.federation import read_federation
from crypten_fl.fedtrain.run.init_from import resolve_init_from
from crypten_fl.fedtrain.strategies.vertical_private import gradient_bound, party_features
from crypten_fl.mimic_etl.partition.pipeline import partition
from helpers.cohort_fixture import DEFAULT_FEATURES, random_cohort
from helpers.dp_checks import check_evaluate_predicts_as_trained, check_exchange_accounting
from helpers.federation import TINY_MODEL, both_federations
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

ONE_ROUND = {**TINY_MODEL, "rounds": 1, "timeout": 180}
ARCH = {k: v for k, v in TINY_MODEL.items() if k != "timeout"}


# --- the public rows: layout, checks -------------------------------------------------------

def _rows(features: list[str], n: int = 6, static: int = 2, seed: int = 0
          ) -> tuple[PublicRows, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, 2 * len(features), generator=gen)
    s = torch.randn(n, static, generator=gen)
    summaries = torch.cat([stay_summary(x, len(features)), s], dim=1)
    rows = PublicRows(summaries, torch.zeros(n, 3), list(features),
                      [f"s{i}" for i in range(static)])
    return rows, x, s


def test_a_partys_columns_are_every_statistic_of_its_features_in_its_order_then_static() -> None:
    rows, _, _ = _rows(["a", "b", "c"])  # 5 statistics x 3 features, then 2 static values
    assert rows.columns(["c", "a"], has_static=True).tolist() == [2, 0, 5, 3, 8, 6, 11, 9, 14,
                                                                  12, 15, 16]
    assert rows.columns(["b"], has_static=False).tolist() == [1, 4, 7, 10, 13]


@settings(max_examples=25, deadline=None)
@given(st.permutations(["hr", "sbp", "lactate", "urine", "insulin"]), st.integers(1, 5),
       st.booleans())
def test_the_public_columns_of_a_party_are_its_own_summaries(order, k, has_static) -> None:
    """Property: a party holding any ``k`` of the features, in any order, computes from its own
    series exactly the public rows' columns it is given (so the map it fits reads the values
    it will be applied to)."""
    names = ["hr", "sbp", "lactate", "urine", "insulin"]
    rows, x, s = _rows(names)
    mine = list(order[:k])
    index = [names.index(n) for n in mine]
    width = len(names)
    own_x = torch.cat([x[..., index], x[..., [width + i for i in index]]], dim=2)
    own = torch.cat([stay_summary(own_x, k), s if has_static else s[:, :0]], dim=1)
    assert torch.equal(rows.summaries[:, rows.columns(mine, has_static)], own)


def _card(features: list[dict], static: list[str], **grid: object) -> Pretrained:
    schema = {"version": 1, "n_bins": 24, "bin_hours": 2.0, "hours": 48.0, "training": "t1",
              "features": features, "static": static, **grid}
    return Pretrained(Path("MODEL"), {"schema": schema, "data": {"public": True}})


def test_a_party_fits_the_public_data_if_its_features_are_among_them() -> None:
    public = [{"name": "hr", "unit": "bpm", "definition": "d1"},
              {"name": "lactate", "unit": "mmol/L", "definition": "d2"}]
    card = _card(public, ["age", "sex"])
    mine = {"version": 1, "n_bins": 24, "bin_hours": 2.0, "hours": 48.0, "training": "t1",
            "features": [{"name": "lactate", "unit": "mmol/L", "definition": "d2"}],
            "static": []}
    assert public_features.mismatches(card, mine) == []
    other = {**mine, "n_bins": 12, "static": ["age"],
             "features": [{"name": "lactate", "unit": "mg/dL", "definition": "d2"},
                          {"name": "sofa", "unit": "points", "definition": None},
                          {"name": "hr", "unit": "bpm", "definition": "d9"}]}
    assert public_features.mismatches(card, other) == [
        "time grid 12 bins of 2.0 h over 48.0 h, the pretrained model has 24 bins of 2.0 h over "
        "48.0 h",
        "feature lactate: unit mg/dL, the public data has mmol/L",
        "feature sofa is not in the public data",
        "feature hr: definition d9, the public data has d1",
        "static columns differ from the public data's"]


def test_fitting_is_deterministic_learns_the_public_labels_and_survives_saving() -> None:
    gen = torch.Generator().manual_seed(1)
    summaries = torch.randn(400, 11, generator=gen)  # 2 features x 5 statistics + 1 static
    labels = torch.stack([(summaries[:, 0] > 0), (summaries[:, 6] < 0)], 1).float()
    rows = PublicRows(summaries, labels, ["a", "b"], ["s"])
    first = public_features.fit_projection(rows, ["b", "a"], True, seed=4)
    again = public_features.fit_projection(rows, ["b", "a"], True, seed=4)
    assert first.width == 2
    block = summaries[:, rows.columns(["b", "a"], True)]
    assert torch.equal(first(block), again(block))
    correct = ((first(block) > 0).float() == labels).float().mean(0)
    assert correct.min() > 0.85  # each label is one column's sign: learned (chance 0.5)
    restored = PublicProjection.from_state({"feature_widths": torch.tensor([2]),
                                            **first.to_state()})
    assert restored is not None and torch.equal(restored(block), first(block))
    assert PublicProjection.from_state({"feature_widths": torch.tensor([2])}) is None


# --- pretrain writes them; a vertical DP run uses them -------------------------------------

@pytest.fixture(scope="module")
def feds(tmp_path_factory) -> dict[str, Path]:
    return both_federations(tmp_path_factory.mktemp("vfeds"), n_patients=150, seed=3)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    public = random_cohort(tmp_path_factory.mktemp("public") / "cohort", n_patients=160,
                           seed=9).path
    out = tmp_path_factory.mktemp("models") / "model"
    pretrain(TrainConfig(fed="", seed=3, **ARCH), out, epochs=1, cohort=public,
             public_data=True)
    return out


def test_pretrain_writes_the_public_rows_with_their_hash(model) -> None:
    card = read_pretrained(model).card
    entry = card["public_features"]
    assert entry["sha256"] == public_features.sha256_file(model / public_features.FILE)
    rows = public_features.read(read_pretrained(model))
    assert entry["stays"] == card["data"]["stays"]["train"] == len(rows.summaries)
    assert rows.summaries.shape[1] == 5 * len(card["features"]) + card["architecture"]["n_static"]
    assert rows.labels.shape == (len(rows.summaries), len(card["labels"]))
    assert set(rows.labels.unique().tolist()) <= {0.0, 1.0}


def test_a_changed_or_missing_public_file_is_refused_in_one_line(model, tmp_path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    data = bytearray((copy / public_features.FILE).read_bytes())
    data[-1] ^= 1
    (copy / public_features.FILE).write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"public_features.safetensors: sha256 .*, its card says "
                                        r".* \(the file was changed\)$"):
        public_features.read(read_pretrained(copy))
    card = json.loads((copy / "card.json").read_text())
    del card["public_features"]
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"the model has no public feature map \(it was "
                                        r"pretrained by an earlier crypten-fl"):
        public_features.read(read_pretrained(copy))


def test_vertical_dp_from_the_public_map_accounts_as_before_and_evaluates_alike(
        feds, model, tmp_path) -> None:
    config = TrainConfig(fed=str(feds["vertical"]), strategy="vertical", dp_epsilon=4.0,
                         init_from=str(model), **ONE_ROUND)
    summary = train(config, tmp_path / "run")
    privacy = summary.privacy
    assert privacy["pretraining"]["epsilon"] == 0.0
    assert privacy["pretraining"]["public_data"] is True
    rows = public_features.read(read_pretrained(model))
    for party, report in privacy["hospitals"].items():
        check_exchange_accounting(report, 4.0, config.rounds * config.local_epochs)
        assert report["max_grad_norm"] == gradient_bound(3, 12) == 0.5 * math.sqrt(12) * 2
        assert report["features"].startswith("12 per record: the 12 logits of a logistic ")
        saved = load_file(str(tmp_path / "run" / f"model_party_{party}.safetensors"))
        assert saved["feature_widths"].tolist() == [12, 12, 12]
        projection = PublicProjection.from_state(saved)
        assert projection is not None  # privacy.json records the digest of the map it started from
        assert privacy["pretraining"]["initial_model_sha256"][party] == state_digest(
            projection.to_state())
        manifest = json.loads((feds["vertical"] / f"hospital_{party}" / "manifest.json")
                              .read_text())
        names = [f["name"] for f in manifest["features"]]
        has_static = "age" in (manifest.get("static") or [])
        # the party's map is the one fitted on its own public columns with the run's seed
        fitted = public_features.fit_projection(rows, names, has_static, config.seed)
        assert torch.equal(projection.linear.weight, fitted.linear.weight)
        block = rows.summaries[:10, rows.columns(names, has_static)]
        assert torch.equal(projection(block), fitted(block))
        # a party's series and static vector become its 12 scaled logits
        x, static = torch.zeros(3, 2, 2 * len(names)), torch.zeros(3, static_width(has_static))
        assert party_features(x, static, projection).shape == (3, 12)
    # evaluate maps each party's data with the map saved with its model
    check_evaluate_predicts_as_trained(tmp_path / "run")


def test_vertical_without_dp_refuses_init_from_in_one_line(feds, model, tmp_path) -> None:
    with pytest.raises(UserError, match=r"^--init-from with --strategy vertical works with "
                                        r"--dp-epsilon \(each party's features mapped by a "):
        train(TrainConfig(fed=str(feds["vertical"]), strategy="vertical",
                          init_from=str(model), **ONE_ROUND), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_sweep_names_the_epsilon_vertical_cannot_start_from_the_map(feds, model, tmp_path
                                                                      ) -> None:
    base = TrainConfig(fed=str(feds["vertical"]), strategy="vertical", init_from=str(model),
                       **ONE_ROUND)
    with pytest.raises(UserError) as err:
        sweep(base, [3.0, None], tmp_path / "sweep")
    assert str(err.value).startswith("--dp-epsilon inf: --init-from with --strategy vertical "
                                     "works with --dp-epsilon")
    assert not (tmp_path / "sweep").exists()


def test_a_party_whose_features_the_public_data_lacks_is_refused(model, tmp_path) -> None:
    cohort = random_cohort(tmp_path / "cohort", n_patients=60, seed=1,
                           features=[f for f in DEFAULT_FEATURES if f[0] != "lactate"]).path
    partition(cohort, tmp_path / "vfed", hospitals=None, vertical=True, seed=0)
    card = json.loads((model / "card.json").read_text())
    assert "lactate" in card["features"]
    # the federation lacks a public feature: fine (a party's columns are a subset) ...
    train_config = TrainConfig(fed=str(tmp_path / "vfed"), strategy="vertical", dp_epsilon=3.0,
                               init_from=str(model), **ONE_ROUND)
    hospitals = read_federation(tmp_path / "vfed", "vertical")
    resolved, _ = resolve_init_from(train_config, [h.schema for h in hospitals])
    assert resolved.init_from_sha256 == read_pretrained(model).weights_sha256
    # ... a party with a feature the public data lacks is not
    schema = dict(hospitals[0].schema)
    schema["features"] = [*schema["features"], {"name": "sofa", "unit": "points",
                                                "definition": None}]
    with pytest.raises(UserError) as err:
        resolve_init_from(train_config, [schema])
    assert str(err.value) == (f"--init-from {model}: the public feature map does not fit this "
                              "party's data: feature sofa is not in the public data")


def test_a_map_of_data_not_declared_public_is_refused(feds, model, tmp_path) -> None:
    """The map costs no ε only because its data is public: a card that does not say so is
    refused before any process starts, as for every --init-from."""
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    card = json.loads((copy / "card.json").read_text())
    card["data"]["public"] = False
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"its card does not say it was trained on public data"):
        train(TrainConfig(fed=str(feds["vertical"]), strategy="vertical", dp_epsilon=3.0,
                          init_from=str(copy), **ONE_ROUND), tmp_path / "r")
    assert not (tmp_path / "r").exists()
