"""Attack scores (loss, LiRA), the public histogram grid, the member/non-member sampler and
reference-model re-initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from crypten_fl.fedtrain.models.dp_compat import canonical_state_dict, make_private_compatible
from crypten_fl.fedtrain.models.transformer import ICUTransformer
from crypten_fl.fedtrain.privacy.membership_inference import (
    DEFAULT_BINS,
    lira_scores,
    loss_scores,
    per_stay_loss,
    score_histogram,
    symlog,
)
from crypten_fl.fedtrain.privacy.reference import fresh_model, starting_model
from crypten_fl.fedtrain.privacy.sampling import (
    reference_subsets,
    rng_for,
    sample_audit_sets,
    strata,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def test_per_stay_loss_is_torch_bce_averaged_over_labels() -> None:
    rng = np.random.default_rng(0)
    z, y = rng.normal(0, 4, (7, 12)), rng.integers(0, 2, (7, 12)).astype(float)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(z), torch.from_numpy(y), reduction="none").mean(dim=1).numpy()
    assert per_stay_loss(z, y) == pytest.approx(expected, rel=1e-12)
    assert loss_scores(z, y) == pytest.approx(-np.log(expected), rel=1e-12)


def test_loss_score_of_a_memorised_stay_stays_finite_and_ranks_first() -> None:
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    z = np.array([[60.0, -60.0], [1.0, -1.0]])  # float64 BCE of the first is ~1e-26
    scores = loss_scores(z, y)
    assert np.isfinite(scores).all() and scores[0] > scores[1]
    assert scores[0] == pytest.approx(-math.log(1e-12))


def test_lira_score_by_hand() -> None:
    # two references per stay; per label the residuals are ±1 → σ = sqrt(4·1 / (2·(2−1))) = √2
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    mu = np.array([[2.0, -1.0], [0.5, 3.0]])  # reference mean of z per stay and label
    reference = np.stack([mu + 1.0, mu - 1.0])
    phi_mu = (2 * y - 1) * mu
    target_phi = phi_mu + np.array([[2.0, 1.0], [-1.0, 0.0]]) * math.sqrt(2.0)
    target = (2 * y - 1) * target_phi
    scores = lira_scores(target, reference, y)
    assert scores == pytest.approx([3 / math.sqrt(2), -1 / math.sqrt(2)])
    with pytest.raises(ValueError, match="at least 2"):
        lira_scores(target, reference[:1], y)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50))
def test_histogram_keeps_every_score_and_the_grid_is_monotone(values: list[float]) -> None:
    scores = np.array(values)
    hist = score_histogram(scores, 1000)
    assert hist.sum() == len(values) and hist.shape == (1000,)
    order = np.argsort(scores)
    assert np.all(np.diff(symlog(scores[order])) >= 0)


def test_histogram_bins_on_the_public_grid() -> None:
    assert DEFAULT_BINS == 8000
    hist = score_histogram(np.array([0.0, -1e9, 1e9, math.e - 1]), bins=16)
    # symlog: 0 → bin 8 (centre), ±1e9 → outermost bins, e − 1 → symlog 1 → 8 + 1 = bin 9
    assert np.flatnonzero(hist).tolist() == [0, 8, 9, 15]


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.random((n, 12)) < rng.random((n, 1)) * 0.4).astype(np.int8)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(5, 80), st.integers(5, 80), st.integers(0, 10**6))
def test_sampler_equal_stratified_disjoint_and_seeded(n_train: int, n_held: int,
                                                      seed: int) -> None:
    rng = np.random.default_rng(seed)
    train, held = _labels(rng, n_train), _labels(rng, n_held)
    sets = sample_audit_sets(train, held, rng_for(seed, 2))
    assert sets.members.size == sets.non_members.size
    expected = sum(min((strata(train) == s).sum(), (strata(held) == s).sum()) for s in range(4))
    assert sets.n_pairs == expected
    assert np.array_equal(np.bincount(strata(train[sets.members]), minlength=4),
                          np.bincount(strata(held[sets.non_members]), minlength=4))
    assert np.union1d(sets.members, sets.reference_train).tolist() == list(range(n_train))
    assert np.intersect1d(sets.members, sets.reference_train).size == 0
    assert np.union1d(sets.non_members, sets.reference_held_out).tolist() == list(range(n_held))
    assert np.intersect1d(sets.non_members, sets.reference_held_out).size == 0
    again = sample_audit_sets(train, held, rng_for(seed, 2))
    assert np.array_equal(again.members, sets.members)
    assert np.array_equal(again.non_members, sets.non_members)


def test_sampler_draws_differ_between_seeds_and_hospitals() -> None:
    rng = np.random.default_rng(0)
    train, held = _labels(rng, 300), _labels(rng, 300)
    draws = [sample_audit_sets(train, held, rng_for(s, h)).members for s, h in
             ((0, 0), (1, 0), (0, 1))]
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])


def test_strata_cap_at_three_positive_labels() -> None:
    labels = np.zeros((5, 12), dtype=np.int8)
    for i, k in enumerate((0, 1, 2, 3, 7)):
        labels[i, :k] = 1
    assert strata(labels).tolist() == [0, 1, 2, 3, 3]


def test_reference_subsets_are_seeded_random_fractions() -> None:
    a = reference_subsets(21, 3, np.random.default_rng(4))
    b = reference_subsets(21, 3, np.random.default_rng(4))
    assert [s.size for s in a] == [10, 10, 10]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len({tuple(s) for s in a}) == 3
    whole = reference_subsets(21, 2, np.random.default_rng(4), fraction=1.0)
    assert all(s.tolist() == list(range(21)) for s in whole)


def test_fresh_model_reinitialises_every_parameter_deterministically() -> None:
    torch.manual_seed(0)
    model = ICUTransformer(n_features=3, n_static=4, n_bins=6, d_model=8, n_heads=2,
                           n_layers=1, dim_feedforward=16, head_hidden=(8,))
    before = torch.get_rng_state()
    a, b, c = fresh_model(model, 1), fresh_model(model, 1), fresh_model(model, 2)
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left alone
    original = dict(model.named_parameters())
    for name, value in a.named_parameters():
        assert torch.equal(value, dict(b.named_parameters())[name])
        if value.numel() > 1 and value.std() > 0:  # LayerNorm weights re-init to ones
            assert not torch.equal(value, original[name]), name
            assert not torch.equal(value, dict(c.named_parameters())[name]), name


def test_reference_models_of_a_pretrained_run_start_from_its_public_weights() -> None:
    """A run from --init-from began at the public weights; its reference models must too (a
    random start would make them a different family, and the shadow attack weaker)."""
    torch.manual_seed(0)
    model = make_private_compatible(ICUTransformer(
        n_features=3, n_static=4, n_bins=6, d_model=8, n_heads=2, n_layers=1,
        dim_feedforward=16, head_hidden=(8,)))  # the DP model: other parameter names
    before = canonical_state_dict(model)
    public = {k: torch.randn_like(v) for k, v in before.items()}
    started = canonical_state_dict(starting_model(model, 3, public))
    assert started.keys() == public.keys()
    assert all(torch.equal(value, public[name]) for name, value in started.items())
    # the target model is left as it was; without public weights the start is the seeded one
    assert all(torch.equal(v, before[k]) for k, v in canonical_state_dict(model).items())
    fresh = canonical_state_dict(fresh_model(model, 3))
    assert all(torch.equal(v, fresh[k])
               for k, v in canonical_state_dict(starting_model(model, 3)).items())
