"""ICUTransformer: shapes, encoder/head split, and Opacus compatibility (exact per-sample grads)."""

from __future__ import annotations

import copy

import pytest
import torch
from crypten_fl.fedtrain.models.dp_attention import BatchFirstDPMultiheadAttention
from crypten_fl.fedtrain.models.dp_compat import (
    canonical_state_dict,
    load_canonical_state_dict,
    make_private_compatible,
)
from crypten_fl.fedtrain.models.transformer import ICUTransformer
from helpers.ml_core import N_BINS, N_FEATURES, N_LABELS, N_STATIC, tiny_model
from opacus import GradSampleModule
from opacus.layers import DPMultiheadAttention
from opacus.validators import ModuleValidator
from torch import nn


def _batch(n: int = 5, seed: int = 0, n_steps: int = N_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_steps, 2 * N_FEATURES, generator=gen)
    return x, torch.randn(n, N_STATIC, generator=gen)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_forward_shapes(pooling: str) -> None:
    model = tiny_model(pooling=pooling).eval()
    x, s = _batch(7)
    assert model.encoder(x, s).shape == (7, 16)
    assert model(x, s).shape == (7, N_LABELS)
    assert model(x[:, :3], s).shape == (7, N_LABELS)  # fewer bins than the embedding holds


def test_default_model_shapes_and_relu_only() -> None:
    model = ICUTransformer(n_features=45, n_static=10).eval()
    x, s = torch.randn(3, 24, 90), torch.randn(3, 10)
    assert model(x, s).shape == (3, 12)
    assert not any(isinstance(m, nn.GELU) for m in model.modules())
    assert all(layer.activation_relu_or_gelu == 1 for layer in model.encoder.transformer.layers)
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_cls_and_mean_pooling_differ_in_parameters_and_output() -> None:
    cls_model, mean_model = tiny_model(pooling="cls"), tiny_model(pooling="mean")
    assert "encoder.cls_embedding.weight" in dict(cls_model.named_parameters())
    assert "encoder.cls_embedding.weight" not in dict(mean_model.named_parameters())
    x, s = _batch()
    mean_model.eval()
    hidden = mean_model.encoder.transformer(
        mean_model.encoder.input_proj(x)
        + mean_model.encoder.time_embedding.weight[:N_BINS]
        + mean_model.encoder.static_proj(s)[:, None]
    )
    torch.testing.assert_close(mean_model.encoder(x, s), hidden.mean(dim=1))


def test_bad_inputs_are_rejected() -> None:
    model = tiny_model()
    x, s = _batch(n_steps=N_BINS + 1)
    with pytest.raises(ValueError, match="time bins"):
        model(x, s)
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(2, N_BINS, N_FEATURES), torch.randn(2, N_STATIC))
    with pytest.raises(ValueError, match="pooling"):
        ICUTransformer(3, 2, pooling="max")  # type: ignore[arg-type]


def test_encoder_and_head_cover_every_parameter_exactly_once() -> None:
    model = tiny_model()
    enc = {id(p) for p in model.encoder.parameters()}
    head = {id(p) for p in model.head.parameters()}
    assert enc.isdisjoint(head)
    assert enc | head == {id(p) for p in model.parameters()}
    assert all(k.startswith(("encoder.", "head.")) for k in model.state_dict())


@pytest.mark.parametrize("personal_layers", [0, 1, 2])
def test_split_at_layer_granularity(personal_layers: int) -> None:
    model = tiny_model().eval()
    x, s = _batch()
    lower = model.lower(x, s, personal_layers)
    torch.testing.assert_close(model.upper(lower, personal_layers), model(x, s))
    shared = [k for k in model.state_dict() if model.is_shared_key(k, personal_layers)]
    head_shared = {k.split(".")[1] for k in shared if k.startswith("head.")}
    assert head_shared == {str(i) for i in range(model.n_head_layers - personal_layers)}
    assert all(k in shared for k in model.state_dict() if k.startswith("encoder."))
    width = 16 if personal_layers > 0 else N_LABELS
    assert lower.shape == (5, width)


def test_split_rejects_out_of_range_cut() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="personal_layers"):
        model.is_shared_key("head.0.0.weight", model.n_head_layers + 1)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_private_compatible_model_computes_the_same_function(pooling: str) -> None:
    model = tiny_model(pooling=pooling).eval()
    fixed = make_private_compatible(model).eval()
    x, s = _batch()
    with torch.no_grad():
        torch.testing.assert_close(fixed(x, s), model(x, s), atol=1e-5, rtol=1e-5)
    assert any(isinstance(m, BatchFirstDPMultiheadAttention) for m in fixed.modules())
    assert not any(isinstance(m, nn.MultiheadAttention) for m in fixed.modules())


def test_upstream_dp_attention_batch_first_bug_is_why_we_patch() -> None:
    """Opacus 1.6.0 splices heads into time steps with batch_first (opacus #774 / PR #825).

    If this fails, Opacus fixed it: BatchFirstDPMultiheadAttention can be dropped.
    """
    model = tiny_model(dropout=0.0).eval()
    upstream = ModuleValidator.fix(model).eval()
    assert any(type(m) is DPMultiheadAttention for m in upstream.modules())
    x, s = _batch()
    with torch.no_grad():
        assert (upstream(x, s) - model(x, s)).abs().max() > 1e-3


def test_canonical_state_round_trip_between_stock_and_dp_models() -> None:
    stock, other = tiny_model(seed=0), tiny_model(seed=1)
    fixed = make_private_compatible(stock)
    canonical = canonical_state_dict(fixed)
    assert canonical.keys() == stock.state_dict().keys()
    for key, value in stock.state_dict().items():
        assert torch.equal(canonical[key], value), key
    load_canonical_state_dict(fixed, other.state_dict())
    x, s = _batch()
    fixed.eval()
    other.eval()
    with torch.no_grad():
        torch.testing.assert_close(fixed(x, s), other(x, s), atol=1e-5, rtol=1e-5)
    with pytest.raises(KeyError, match="does not know"):
        load_canonical_state_dict(fixed, {"encoder.nope": torch.zeros(1)})


def test_inplace_activations_are_cleared_for_opacus() -> None:
    model = tiny_model(dropout=0.0)
    model.head[0][1] = nn.ReLU(inplace=True)
    fixed = make_private_compatible(model)
    assert not any(getattr(m, "inplace", False) for m in fixed.modules())
    assert model.head[0][1].inplace  # the input model is untouched


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_opacus_per_sample_gradients_equal_one_at_a_time_gradients(pooling: str) -> None:
    model = make_private_compatible(tiny_model(dropout=0.0, pooling=pooling))
    reference = copy.deepcopy(model)
    wrapped = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    x, s = _batch(6, seed=3)
    y = (torch.rand(6, N_LABELS, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    loss_fn(wrapped(x, s), y).backward()
    named = dict(model.named_parameters())
    assert all(p.grad_sample is not None for p in named.values())
    for i in range(6):
        reference.zero_grad()
        loss_fn(reference(x[i : i + 1], s[i : i + 1]), y[i : i + 1]).backward()
        for name, p in reference.named_parameters():
            torch.testing.assert_close(
                named[name].grad_sample[i], p.grad, atol=1e-5, rtol=1e-4, msg=name
            )
