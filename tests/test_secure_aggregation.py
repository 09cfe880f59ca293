"""SecureAggregator in real party processes: exact weighted mean, and parties only send shares."""

from __future__ import annotations

import itertools

import pytest
import torch
from crypten_fl.fedtrain.launch import PartyFailure
from crypten_fl.fedtrain.secure import fixed_point
from helpers.parties import run_job
from helpers.party_jobs import party_vector
from safetensors.torch import load_file

N, SEED, SCALE = 20_000, 11, 3.0
WEIGHTS = [120.0, 45.0, 300.0, 7.0]


def _outputs(tmp_path, rank: int) -> dict[str, torch.Tensor]:
    return load_file(str(tmp_path / f"party_{rank}" / "out.safetensors"))


@pytest.fixture(scope="module")
def four_party_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("secagg")
    spec = {"n": N, "seed": SEED, "scale": SCALE, "weights": WEIGHTS}
    results = run_job("secure_weighted_mean", [spec] * 4, workdir, timeout_s=30)
    return workdir, results


def test_secure_weighted_mean_equals_plaintext_within_fixed_point_precision(four_party_run) -> None:
    workdir, results = four_party_run
    xs = [party_vector(SEED, r, N, SCALE).double() for r in range(4)]
    expected = sum(w * x for w, x in zip(WEIGHTS, xs, strict=True)) / sum(WEIGHTS)
    for rank in range(4):
        got = _outputs(workdir, rank)["mean"]
        # each party rounds w·x to 2^-17; the sum is divided by the total weight
        assert (got - expected).abs().max().item() <= 4 * 2**-17 / sum(WEIGHTS) + 1e-12
        assert results[rank]["total_weight"] == sum(WEIGHTS)


def test_parties_send_only_shares_never_their_update(four_party_run) -> None:
    """What a party puts on the wire is its masked share: it reveals nothing of its update alone,
    nor does any strict subset of parties' shares; only all four together give the sum."""
    workdir, _ = four_party_run
    sent = [_outputs(workdir, r) for r in range(4)]
    assert all(set(s) == {"mean", "sent_0"} for s in sent)  # one all-reduce each, nothing else
    shares = [s["sent_0"] for s in sent]
    plain = [
        fixed_point.encode(torch.cat([party_vector(SEED, r, N, SCALE).double() * WEIGHTS[r],
                                      torch.tensor([WEIGHTS[r]], dtype=torch.float64)]))
        for r in range(4)
    ]
    for size in (1, 2, 3):
        for subset in itertools.combinations(range(4), size):
            share_sum = sum(shares[r] for r in subset)
            plain_sum = sum(plain[r] for r in subset)
            assert (share_sum == plain_sum).float().mean().item() < 1e-3
            diff = share_sum - plain_sum  # the mask: about half its top bits set
            assert abs((diff < 0).double().mean().item() - 0.5) < 0.02
    assert (sum(shares) == sum(plain)).all()


def test_plain_aggregator_gives_the_same_mean(tmp_path) -> None:
    spec = {"n": N, "seed": SEED, "scale": SCALE, "weights": WEIGHTS, "secure": False}
    run_job("secure_weighted_mean", [spec] * 4, tmp_path, timeout_s=30)
    xs = [party_vector(SEED, r, N, SCALE).double() for r in range(4)]
    expected = sum(w * x for w, x in zip(WEIGHTS, xs, strict=True)) / sum(WEIGHTS)
    got = load_file(str(tmp_path / "party_0" / "out.safetensors"))["mean"]
    assert torch.allclose(got, expected, atol=1e-12)


def test_a_crashing_party_stops_the_run_and_is_named(tmp_path) -> None:
    with pytest.raises(PartyFailure) as info:
        run_job("crash_after_event", [{"crash_rank": 2}] * 3, tmp_path, timeout_s=20,
                party_name=lambda r: f"hospital {r}")
    assert info.value.rank == 2
    assert "hospital 2 failed: RuntimeError: simulated hospital crash" in str(info.value)
    assert info.value.last_event["event"] == "round_done"
