"""Vertical learning under DP (fedtrain/strategies/vertical_private.py): the features each party
shares are bounded, one record's gradient is within the bound the noise is calibrated to, and the
encrypted step computes that gradient (real party processes, TTP dealer)."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from crypten_fl.fedtrain.local_training.dp_exchange import noise_std, total_noise_std
from crypten_fl.fedtrain.models.stay_summary import stay_summary
from crypten_fl.fedtrain.strategies.vertical_private import (
    FEATURE_SCALE,
    GRADIENT_CLAMP,
    feature_width,
    gradient_bound,
    learning_rate,
    party_features,
)
from helpers.parties import run_job
from hypothesis import given, settings
from safetensors.torch import load_file


def test_features_are_the_summaries_and_static_values_scaled_by_half_the_root_width() -> None:
    x = torch.tensor([[[0.0, 1.0], [0.4, 0.0], [0.2, 1.0]]])  # 1 stay, 3 bins, 1 feature
    static = torch.tensor([[0.3]])
    got = party_features(x, static)
    assert got.shape == (1, feature_width(1, 1)) == (1, 6)
    # mean 0.2, max 0.4, min 0, last 0.2, observed 2/3, static 0.3: norm 0.88 < √6/2, unclipped
    scale = FEATURE_SCALE * math.sqrt(6)
    expected = torch.tensor([[0.2, 0.4, 0.0, 0.2, 2 / 3, 0.3]]) / scale
    assert torch.allclose(got, expected)


def test_a_long_row_is_clipped_to_norm_one_and_keeps_its_direction() -> None:
    x = torch.tensor([[[5.0, 1.0], [5.0, 1.0]]])  # every summary at its clamp
    got = party_features(x, torch.tensor([[100.0]]))  # and a huge static value
    raw = torch.cat([stay_summary(x, 1), torch.tensor([[100.0]])], 1)
    assert float(got.norm()) == pytest.approx(1.0, abs=2e-3)
    assert float(got.norm()) < 1.0
    assert torch.allclose(got / got.norm(), raw / raw.norm())


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), bins=st.integers(1, 6), features=st.integers(1, 4),
       static=st.integers(0, 3), scale=st.floats(1e-3, 1e6), seed=st.integers(0, 2**16))
def test_every_row_of_features_has_norm_at_most_one(rows, bins, features, static, scale, seed
                                                    ) -> None:
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, bins, features, generator=gen) * scale
    mask = (torch.rand(rows, bins, features, generator=gen) > 0.5).float()
    got = party_features(torch.cat([values, mask], 2), torch.randn(rows, static) * scale)
    assert got.shape == (rows, feature_width(features, static))
    assert float(got.norm(dim=1).max()) <= 1.0


@settings(max_examples=60, deadline=None)
@given(parties=st.integers(1, 4), labels=st.integers(1, 12), width=st.integers(1, 6),
       logit_scale=st.floats(0.0, 1e4), seed=st.integers(0, 2**16))
def test_one_records_clamped_gradient_is_within_the_bound(parties, labels, width, logit_scale,
                                                         seed) -> None:
    """(x gᵀ, g) with every block of x of norm ≤ 1 and g = clamp(σ(z) − y) has norm ≤ B, at
    any logits — by autograd on the linear top model."""
    gen = torch.Generator().manual_seed(seed)
    blocks = [torch.randn(1, width, generator=gen) for _ in range(parties)]
    x = torch.cat([b / b.norm() for b in blocks], 1)
    layer = torch.nn.Linear(x.shape[1], labels)
    z = torch.randn(1, labels, generator=gen) * logit_scale
    y = (torch.rand(1, labels, generator=gen) > 0.5).float()
    g = (torch.sigmoid(z) - y).clamp(-GRADIENT_CLAMP, GRADIENT_CLAMP)
    (layer(x) * g).sum().backward()
    norm = torch.cat([layer.weight.grad.flatten(), layer.bias.grad]).norm()
    assert float(norm) <= gradient_bound(parties, labels) * (1 + 1e-6)


@pytest.mark.parametrize("chunks", [1, 2])
def test_the_encrypted_step_computes_the_sum_of_clamped_gradients(tmp_path, chunks) -> None:
    """Three parties' blocks, labels at party 0; logits from huge to small: the encrypted
    gradient sum equals Σ x_i clamp(σ(z_i) − y_i)ᵀ computed in the clear (to fixed-point and
    sigmoid accuracy), whether the rows go through in one pass or in chunks."""
    gen = torch.Generator().manual_seed(4)
    n, widths, labels = 6, [2, 3, 1], 2
    blocks = [torch.randn(n, w, generator=gen) for w in widths]
    blocks = [b / b.norm(dim=1, keepdim=True) for b in blocks]
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    spec = {"features": [b.tolist() for b in blocks], "labels": y.tolist(), "chunks": chunks,
            "weight_scale": 20.0}
    run_job("private_top_gradient", [spec] * 3, tmp_path, ttp=True, timeout_s=120)
    got = load_file(str(tmp_path / "party_0" / "top.safetensors"))
    torch.manual_seed(0)
    layer = torch.nn.Linear(sum(widths), labels)
    with torch.no_grad():
        layer.weight.mul_(20.0)
    x = torch.cat(blocks, 1)
    raw = (torch.sigmoid(layer(x)) - y).detach()
    assert float(raw.abs().max()) > 0.9 and float(raw.abs().min()) < 0.1  # the clamp matters
    g = raw.clamp(-GRADIENT_CLAMP, GRADIENT_CLAMP)
    # lr −1, n 1: the weights moved by +gradient sum
    assert torch.allclose(got["weight"] - layer.weight.detach(), g.T @ x, atol=2e-2)
    assert torch.allclose(got["bias"] - layer.bias.detach(), g.sum(0), atol=2e-2)
    assert float((got["weight"] - layer.weight.detach()).abs().max()) > 0.1  # it moved


def test_the_rate_grows_with_the_records_and_shrinks_with_the_noise_within_its_bounds() -> None:
    assert learning_rate(2400, 20.0) == pytest.approx(0.017 * 2400 / 20)  # 2.04
    assert learning_rate(4800, 20.0) == pytest.approx(2 * learning_rate(2400, 20.0))
    assert learning_rate(100, 50.0) == 0.5  # at least MIN_LR
    assert learning_rate(10**6, 1.0) == learning_rate(10**6, 0.0) == 8.0  # at most MAX_LR


def test_each_party_adds_the_full_noise_or_a_one_over_p_minus_one_share_of_its_variance() -> None:
    assert noise_std(10.0, 2.0, 3, "local") == 20.0
    assert noise_std(10.0, 2.0, 3, "distributed") == pytest.approx(20.0 / math.sqrt(2))
    # any one party sees the other two shares: variance (ν·B)², as with its own full noise
    assert 2 * noise_std(10.0, 2.0, 3, "distributed") ** 2 == pytest.approx(400.0)
    # all the noise on the secret: three full draws, three shares, or the dealer's one draw
    assert total_noise_std(10.0, 2.0, 3, "local") == pytest.approx(20.0 * math.sqrt(3))
    assert total_noise_std(10.0, 2.0, 3, "distributed") == pytest.approx(20.0 * math.sqrt(1.5))
    assert noise_std(10.0, 2.0, 3, "dealer") == total_noise_std(10.0, 2.0, 3, "dealer") == 20.0
