"""Cryptographically secure DP randomness (issue 12, item 4): the AES-256-CTR stream, its
uniforms and Gaussians, and that DP-SGD and central DP draw their noise (and DP-SGD its Poisson
batches) from it — with the right variance, and not reproducible from ``--seed``.

The statistical checks use fixed tolerances of about 7 standard errors of the estimate: a correct
sampler fails them with probability below 1e-10, and each test shows that a standard deviation 5 %
too large (σ·1.05) would fail the same check."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from crypten_fl.fedtrain.local_training.dp_sgd import DPConfig, make_private, uses_secure_rng
from crypten_fl.fedtrain.local_training.secure_opacus import (
    SecureNoiseDPOptimizer,
    SecurePoissonSampler,
    SecurePrivacyEngine,
)
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer, TrainConfig
from crypten_fl.fedtrain.secure_noise import MAX_ABS_NORMAL, SecureRandom
from crypten_fl.fedtrain.updates.central_dp import DistributedGaussian, private_noise_source
from helpers.ml_core import learnable_inputs, tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

N = 1_000_000


def _looks_standard_normal(z: np.ndarray) -> bool:
    """Mean, variance, kurtosis and the KS distance of ``z`` all within ~7 standard errors of
    N(0, 1) (KS: √n·D > 2.5 has probability 1e-5 under the null; σ·1.05 gives D ≈ 0.012)."""
    n = len(z)
    return bool(abs(z.mean()) < 7 / math.sqrt(n)
                and abs(z.var() - 1) < 7 * math.sqrt(2 / n)
                and abs(stats.kurtosis(z, fisher=False) - 3) < 7 * math.sqrt(24 / n)
                and stats.kstest(z, "norm").statistic < 2.5 / math.sqrt(n))


def test_the_keystream_is_aes_256_ctr_known_answer_sp_800_38a() -> None:
    # NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt), blocks 1-2: keystream = ciphertext ^ plaintext
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    counter = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    plain = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    cipher = bytes.fromhex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5")
    stream = SecureRandom._known_state_for_tests(key, counter).random_bytes(32)
    assert bytes(a ^ b for a, b in zip(stream, plain, strict=True)) == cipher


def test_key_and_counter_move_on_after_every_request() -> None:
    rng = SecureRandom._known_state_for_tests(bytes(32), bytes(16))
    first, second = rng.random_bytes(16), rng.random_bytes(16)
    # the second request is not the next keystream block of the old key (backtracking
    # resistance): it comes from the key and counter replaced from the first request's keystream
    assert second != SecureRandom._known_state_for_tests(bytes(32), bytes(16)).random_bytes(32)[16:]
    assert first != second and rng._key != bytes(32)


def test_two_generators_and_a_forked_child_never_share_a_stream() -> None:
    a, b = SecureRandom(), SecureRandom()
    assert a.random_bytes(32) != b.random_bytes(32)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: same in-memory state as the parent, but another process id
        os.write(write, a.random_bytes(32))
        os._exit(0)
    os.close(write)
    child = os.read(read, 32)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != a.random_bytes(32)


def test_uniforms_are_53_bit_grid_points_in_the_unit_interval() -> None:
    u = SecureRandom().uniform(N)
    assert u.dtype == np.float64 and u.min() >= 0 and u.max() < 1
    assert np.array_equal(u * 2.0**53, np.floor(u * 2.0**53))
    assert abs(u.mean() - 0.5) < 7 * math.sqrt(1 / 12 / N)
    assert stats.kstest(u, "uniform").statistic < 2.5 / math.sqrt(N)


def test_the_noise_is_standard_normal_and_a_wrong_variance_would_be_caught() -> None:
    z = SecureRandom().standard_normal(N).numpy()
    assert _looks_standard_normal(z)
    assert not _looks_standard_normal(z * 1.05)
    assert np.abs(z).max() <= MAX_ABS_NORMAL


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 3000), st.sampled_from([torch.float32, torch.float64]),
       st.floats(1e-3, 1e3))
def test_draws_have_the_asked_shape_dtype_and_are_finite(n, dtype, std) -> None:
    rng = SecureRandom()
    z = rng.standard_normal(n)
    assert z.shape == (n,) and z.dtype == torch.float64
    assert bool(torch.isfinite(z).all()) and bool((z.abs() <= MAX_ABS_NORMAL).all())
    reference = torch.zeros(n, 2, dtype=dtype)
    noise = rng.normal_like(reference, std)
    assert noise.shape == reference.shape and noise.dtype == dtype
    assert bool(torch.isfinite(noise).all()) and bool((noise.abs() <= 8.6 * std).all())
    assert torch.equal(rng.normal_like(reference, 0.0), reference)


def _zero_gradient_private(n: int = 640, batch: int = 64, epsilon: float = 2.0):
    """DP-SGD on a 100k-parameter linear model whose per-sample gradients are all zero, so that
    p.grad after a step is exactly the noise divided by the expected batch size."""
    model = nn.Linear(500, 200)
    data = TensorDataset(torch.zeros(n, 500))
    loader = DataLoader(data, batch_size=batch, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    private = make_private(model, optimizer, loader, DPConfig(target_epsilon=epsilon,
                                                              total_epochs=1))

    def step() -> torch.Tensor:
        (x,) = next(iter(private.loader))
        private.optimizer.zero_grad(set_to_none=True)
        (private.module(x) * 0.0).sum().backward()
        private.optimizer.step()
        return torch.cat([p.grad.reshape(-1) for p in private.module.parameters()])

    return private, step


def test_a_dp_sgd_step_adds_noise_of_std_sigma_c_over_the_expected_batch() -> None:
    private, step = _zero_gradient_private()
    assert isinstance(private.optimizer, SecureNoiseDPOptimizer) and uses_secure_rng(private)
    expected_batch = private.optimizer.expected_batch_size
    assert expected_batch == 64  # Opacus: int(N · sample_rate), sample rate 1/10
    std = private.optimizer.noise_multiplier * private.max_grad_norm / expected_batch
    noise = step().double().numpy()
    assert noise.size == 100_200
    assert _looks_standard_normal(noise / std) and not _looks_standard_normal(noise / std * 1.05)
    again = step().double().numpy()
    assert not np.array_equal(noise, again)


def test_dp_sgd_noise_and_batches_do_not_follow_the_torch_seed() -> None:
    draws = []
    for _ in range(2):
        torch.manual_seed(3)
        private, step = _zero_gradient_private()
        batches = [next(iter(private.loader))[0].shape[0] for _ in range(20)]
        draws.append((step(), batches))
    assert not torch.equal(draws[0][0], draws[1][0])
    assert draws[0][1] != draws[1][1]  # 20 Binomial(640, 0.1) batch sizes: equal w.p. < 1e-20
    assert isinstance(private.loader.batch_sampler, SecurePoissonSampler)


@pytest.mark.parametrize("options, message", [
    ({"poisson_sampling": False}, "Poisson sampling"),
    ({"clipping": "per_layer", "max_grad_norm": [1.0, 1.0]}, "flat clipping"),
    ({"noise_generator": torch.Generator()}, "noise_generator"),
])
def test_the_secure_engine_refuses_what_it_does_not_cover(options, message) -> None:
    model = nn.Linear(3, 1)
    loader = DataLoader(TensorDataset(torch.zeros(8, 3)), batch_size=2)
    with pytest.raises(ValueError, match=message):
        SecurePrivacyEngine(accountant="rdp").make_private(
            module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            data_loader=loader, **{"noise_multiplier": 1.0, "max_grad_norm": 1.0, **options})


def test_poisson_batches_have_the_sample_rate() -> None:
    rng = SecureRandom()
    sampler = SecurePoissonSampler(num_samples=10_000, sample_rate=0.05, rng=rng)
    batches = [batch for _ in range(5) for batch in sampler]  # 5 epochs × 1/q = 20 batches
    assert len(batches) == 100 and all(b == sorted(set(b)) for b in batches)
    sizes = np.array([len(batch) for batch in batches])
    expected, sd = 500, math.sqrt(10_000 * 0.05 * 0.95) / math.sqrt(100)
    assert abs(sizes.mean() - expected) < 7 * sd


def test_two_trainers_with_the_same_seed_train_differently_only_with_dp() -> None:
    train = learnable_inputs(192)
    config = TrainConfig(lr=3e-3, batch_size=64, seed=11, num_threads=1)
    dp = DPConfig(target_epsilon=4.0, total_epochs=1)
    a, b = (LocalTrainer(tiny_model(), train, config, dp) for _ in range(2))
    for trainer in (a, b):
        trainer.train_epochs(1)
    assert any(not torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert a.privacy_report()["secure_rng"] is True  # type: ignore[index]


def test_central_dp_noise_shares_have_the_right_std_and_differ_per_hospital() -> None:
    n, z, clip, shares = 400_000, 1.3, 0.7, 4
    zero = torch.zeros(n, dtype=torch.float64)
    share_std = z * clip / math.sqrt(shares)
    noise = [DistributedGaussian(clip, z, shares, private_noise_source()).contribution(zero, True)
             [:-1].numpy() for _ in range(2)]
    for share in noise:
        assert _looks_standard_normal(share / share_std)
        assert not _looks_standard_normal(share / share_std * 1.05)
    assert not np.array_equal(noise[0], noise[1])
