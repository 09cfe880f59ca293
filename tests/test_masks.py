"""Pure maths of secure aggregation: fixed point, pairwise masks, key agreement."""

from __future__ import annotations

import torch
from crypten_fl.fedtrain.secure import fixed_point, masks
from crypten_fl.fedtrain.secure.keys import KeyPair
from hypothesis import given, settings
from hypothesis import strategies as st


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=50),
       st.integers(8, 24))
def test_fixed_point_round_trip_within_half_a_step(values: list[float], bits: int) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    back = fixed_point.decode(fixed_point.encode(x, bits), bits)
    assert ((back - x).abs() <= 2.0 ** -(bits + 1) + 1e-9).all()


def test_decode_of_known_negative_values() -> None:
    t = torch.tensor([-1, -65536, -65537, 65535, 0], dtype=torch.int64)
    expected = [-1 / 65536, -1.0, -1 - 1 / 65536, 65535 / 65536, 0]
    assert fixed_point.decode(t, 16).tolist() == expected


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 9), st.integers(1, 300), st.integers(0, 5), st.sampled_from([None, 2, 4]))
def test_masks_cancel_exactly_mod_2_64(world: int, n: int, counter: int, degree: int | None
                                       ) -> None:
    if degree is not None and degree >= world - 1:
        degree = None
    keys = {(i, j): bytes([i, j]) * 8 for i in range(world) for j in range(world) if i < j}
    total = torch.zeros(n, dtype=torch.int64)
    for rank in range(world):
        peers = masks.neighbours(rank, world, degree)
        pair_keys = {p: keys[min(rank, p), max(rank, p)] for p in peers}
        total += masks.mask(rank, pair_keys, counter, n)
    assert (total == 0).all()


def test_neighbour_graph_is_symmetric_with_the_asked_degree() -> None:
    for world in range(3, 12):
        for degree in (2, 4):
            if degree >= world - 1:
                continue
            graph = {r: set(masks.neighbours(r, world, degree)) for r in range(world)}
            assert all(len(v) == degree for v in graph.values())
            assert all(r in graph[p] for r, peers in graph.items() for p in peers)
    assert masks.neighbours(1, 4) == [0, 2, 3]


def test_keystream_differs_per_counter_and_key_and_looks_uniform() -> None:
    a, b = masks.expand(b"k" * 16, 0, 100_000), masks.expand(b"k" * 16, 1, 100_000)
    c = masks.expand(b"j" * 16, 0, 100_000)
    assert (a != b).float().mean() > 0.999 and (a != c).float().mean() > 0.999
    top_bit = (a < 0).float().mean().item()
    assert abs(top_bit - 0.5) < 0.01


def test_both_sides_derive_the_same_pair_key_and_others_differ() -> None:
    k0, k1, k2 = KeyPair(), KeyPair(), KeyPair()
    key01 = k0.pair_key(0, 1, k1.public_bytes, b"s")
    assert key01 == k1.pair_key(1, 0, k0.public_bytes, b"s")
    assert key01 != k0.pair_key(0, 2, k2.public_bytes, b"s")
    assert key01 != k0.pair_key(0, 1, k1.public_bytes, b"other session")
    assert len(key01) == 16
