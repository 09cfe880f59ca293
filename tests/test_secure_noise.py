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
import torch
from crypten_fl.fedtrain.secure_noise import MAX_ABS_NORMAL, SecureRandom
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

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
