"""Per-sample clipping of DP-SGD: Opacus' flat rule and automatic clipping (Bu et al.), exact on
hand-made per-sample gradients, and the sensitivity bound C for any gradients (hypothesis)."""

from __future__ import annotations

import pytest
import torch
from crypten_fl.fedtrain.local_training.secure_opacus import (
    AUTOMATIC_CLIPPING_STABILITY,
    SecurePrivacyEngine,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

GAMMA = AUTOMATIC_CLIPPING_STABILITY
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def _summed_clipped(rows: torch.Tensor, clipping: str, c: float) -> torch.Tensor:
    """Σ_i clip(g_i) where g_i = rows[i]: the per-sample gradient of mean(w·x) is x itself."""
    model = nn.Linear(rows.shape[1], 1, bias=False)
    loader = DataLoader(TensorDataset(rows), batch_size=len(rows))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    engine = SecurePrivacyEngine(accountant="rdp", automatic_clipping=clipping == "automatic")
    module, dp_optimizer, _ = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=1.0,
        max_grad_norm=c, poisson_sampling=True, grad_sample_mode="hooks")
    dp_optimizer.zero_grad(set_to_none=True)
    module(rows).mean().backward()
    dp_optimizer.clip_and_accumulate()
    return dp_optimizer.params[0].summed_grad.reshape(-1).detach()


def test_automatic_clipping_scales_each_gradient_by_c_over_its_norm_plus_gamma() -> None:
    rows = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])  # norms 5, 0.5, 0
    got = _summed_clipped(rows, "automatic", 2.0)
    expected = 2.0 * (torch.tensor([3.0, 4.0]) / (5 + GAMMA)
                      + torch.tensor([0.3, 0.4]) / (0.5 + GAMMA))
    assert torch.allclose(got, expected, rtol=1e-6, atol=0)


def test_flat_clipping_leaves_small_gradients_and_shrinks_large_ones_to_c() -> None:
    rows = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    got = _summed_clipped(rows, "flat", 1.0)
    assert torch.allclose(got, torch.tensor([0.6 + 0.3, 0.8 + 0.4]), rtol=1e-5, atol=0)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False), min_size=3,
                max_size=3), st.sampled_from(["automatic", "flat"]),
       st.floats(0.01, 10.0))
def test_one_record_never_moves_the_sum_by_more_than_c(row, clipping, c) -> None:
    """Sensitivity: adding any record changes the clipped sum by at most C (either rule)."""
    base = torch.tensor([[1.0, -2.0, 0.5], [0.1, 0.0, 0.2]])
    with_record = torch.cat([base, torch.tensor([row])])
    change = _summed_clipped(with_record, clipping, c) - _summed_clipped(base, clipping, c)
    assert float(change.norm()) <= c * (1 + 1e-5)
