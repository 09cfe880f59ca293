"""Stay summaries beside the Transformer: exact values, properties, the model's use of them, and
what older run configs and pretrained cards rebuild."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.models.dp_compat import make_private_compatible
from crypten_fl.fedtrain.models.pretrained import Pretrained, mismatches
from crypten_fl.fedtrain.models.stay_summary import CLAMP, stay_summary, summary_width
from crypten_fl.fedtrain.models.transformer import ICUTransformer
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus import GradSampleModule
from torch import nn

F, S, T = 3, 4, 5


def _model(**kw: object) -> ICUTransformer:
    torch.manual_seed(0)
    return ICUTransformer(F, S, n_labels=2, n_bins=T, d_model=8, n_heads=2, n_layers=1,
                          dim_feedforward=16, dropout=0.0, **kw)  # type: ignore[arg-type]


def test_exact_summaries_of_a_hand_built_stay() -> None:
    z = torch.tensor([[0.0, 1.0, -2.0], [2.0, 1.0, -9.0], [4.0, 1.0, 7.0]])  # 3 bins × 3 features
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    out = stay_summary(torch.cat([z, mask], 1)[None], n_features=3)[0]
    torch.testing.assert_close(out, torch.tensor([
        2.0, 1.0, (-2.0 - 5.0 + 5.0) / 3,  # mean (clamped at ±5: -9 → -5, 7 → 5)
        4.0, 1.0, 5.0,                    # max
        0.0, 1.0, -5.0,                   # min
        4.0, 1.0, 5.0,                    # last bin
        2 / 3, 1 / 3, 2 / 3,              # fraction of bins observed
    ]), rtol=0, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_summaries_are_bounded_and_blind_to_the_order_of_all_but_the_last_bin(
        n_bins: int, n_features: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(3, n_bins, n_features, generator=gen) * 10
    mask = (torch.rand(3, n_bins, n_features, generator=gen) > 0.5).float()
    x = torch.cat([values, mask], -1)
    out = stay_summary(x, n_features)
    assert out.shape == (3, summary_width(n_features))
    assert bool((out.abs() <= CLAMP).all())
    observed = out[:, 4 * n_features:]
    assert bool(((observed >= 0) & (observed <= 1)).all())
    order = torch.cat([torch.randperm(n_bins - 1, generator=gen), torch.tensor([n_bins - 1])])
    torch.testing.assert_close(stay_summary(x[:, order], n_features), out)


def test_the_head_reads_the_summaries_and_static_vector_beside_the_pooled_output() -> None:
    model = _model(stay_summary=True, head_hidden=()).eval()
    assert model.encoder.output_width == 8 + 5 * F + S
    assert [type(m) for m in model.head] == [nn.Linear]
    x, s = torch.randn(2, T, 2 * F), torch.randn(2, S)
    rep = model.encoder(x, s)
    torch.testing.assert_close(rep[:, 8:8 + 5 * F], stay_summary(x, F))
    torch.testing.assert_close(rep[:, 8 + 5 * F:], s.clamp(-CLAMP, CLAMP))
    without = _model(stay_summary=False, head_hidden=(4,))
    assert without.encoder.output_width == 8 and without.encoder(x, s).shape == (2, 8)


def test_opacus_per_sample_gradients_are_exact_with_summaries_and_a_linear_head() -> None:
    model = make_private_compatible(_model(stay_summary=True, head_hidden=()))
    reference = copy.deepcopy(model)
    wrapped = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    gen = torch.Generator().manual_seed(3)
    x, s = torch.randn(4, T, 2 * F, generator=gen), torch.randn(4, S, generator=gen)
    y = (torch.rand(4, 2, generator=gen) > 0.5).float()
    loss = nn.BCEWithLogitsLoss(reduction="sum")
    loss(wrapped(x, s), y).backward()
    named = dict(model.named_parameters())
    for i in range(4):
        reference.zero_grad()
        loss(reference(x[i:i + 1], s[i:i + 1]), y[i:i + 1]).backward()
        for name, p in reference.named_parameters():
            torch.testing.assert_close(named[name].grad_sample[i], p.grad, atol=1e-5, rtol=1e-4,
                                       msg=name)


def test_a_run_config_written_before_the_summaries_rebuilds_the_model_of_its_time() -> None:
    old = TrainConfig.from_json({"fed": "f", "head_hidden": 64})
    assert (old.stay_summary, old.head_hidden) == (False, 64)
    assert (TrainConfig.from_json({"fed": "f"}).stay_summary,
            TrainConfig.from_json({"fed": "f"}).head_hidden) == (False, 64)
    new = TrainConfig(fed="f")
    assert (new.stay_summary, new.head_hidden, new.head_layers) == (True, 0, 1)
    assert TrainConfig.from_json({"fed": "f", "stay_summary": True, "head_hidden": 0}) == new


def test_personal_layer_strategies_get_a_shared_hidden_head_layer_unless_told() -> None:
    assert [TrainConfig(fed="f", strategy=s).head_hidden
            for s in ("horizontal", "fedper", "fedmtl", "split", "vertical", "local")] == [
        0, 64, 64, 0, 0, 0]
    assert TrainConfig(fed="f", strategy="fedper", head_hidden=0).head_hidden == 0
    assert TrainConfig(fed="f", strategy="split", head_hidden=16).head_hidden == 16
    saved = dataclasses.asdict(TrainConfig(fed="f", strategy="fedper"))
    assert TrainConfig.from_json(saved).head_hidden == 64  # a run's config.json keeps its width


def test_a_pretrained_card_without_the_field_describes_a_model_without_summaries() -> None:
    arch = {"d_model": 64, "n_heads": 4, "n_layers": 2, "dim_feedforward": 128, "pooling": "cls",
            "head_hidden": 64}
    card = Pretrained(Path("m"), {"architecture": arch, "schema": {}})
    assert mismatches(card, TrainConfig(fed="f", stay_summary=False, head_hidden=64), {}) == []
    assert mismatches(card, TrainConfig(fed="f"), {}) == [
        "--head-hidden 0, the pretrained model has 64",
        "--stay-summary True, the pretrained model has False"]
