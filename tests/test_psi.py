"""Private set intersection: the X25519 group, the protocol's result, what each party sees."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.secure import psi
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from helpers.parties import run_job
from helpers.psi import ORDER, View, clamp, ladder, recognisable, run_recorded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def pseudonyms(n: int, tag: str) -> list[str]:
    """``n`` distinct 64-hex-digit keys, like the partitioner's HMAC pseudonyms."""
    return [hashlib.sha256(f"{tag}:{i}".encode()).hexdigest() for i in range(n)]


def aligned_keys(key_lists: list[list[str]], results: list[psi.AlignmentResult]) -> list[list]:
    return [[keys[i] for i in r.rows] for keys, r in zip(key_lists, results, strict=True)]


def wire(nbytes: int) -> int:
    """Bytes CryptenChannel puts on the wire for one message: length word + padded payload."""
    return 8 + -(-nbytes // 8) * 8


# --- the group --------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=0, max_size=40), st.binary(min_size=32, max_size=32),
       st.binary(min_size=32, max_size=32))
def test_blinding_commutes_and_matches_the_rfc7748_ladder(key, a, b) -> None:
    h = psi.hash_to_curve(key)
    ab = psi.blind(b, psi.blind(a, [h]))[0]
    assert ab == psi.blind(a, psi.blind(b, [h]))[0]
    reference = ladder(clamp(a), int.from_bytes(h, "little"))
    assert int.from_bytes(psi.blind(a, [h])[0], "little") == reference
    assert psi.blind(a, [psi.hash_to_curve(key + "x")])[0] != psi.blind(a, [h])[0]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=psi.P - 1))
def test_jacobi_symbol_equals_euler_criterion(a) -> None:
    euler = pow(a, (psi.P - 1) // 2, psi.P)
    assert psi.jacobi(a) == (0 if a == 0 else 1 if euler == 1 else -1)


def test_hash_to_curve_is_deterministic_canonical_and_on_the_curve_not_the_twist() -> None:
    keys = pseudonyms(16, "h")
    points = [psi.hash_to_curve(k) for k in keys]
    assert points == [psi.hash_to_curve(k) for k in keys]
    assert len(set(points)) == len(keys)
    for h in points:
        u = int.from_bytes(h, "little")
        assert u < psi.P and u not in psi.LOW_ORDER_U
        assert ladder(8 * ORDER, u) is None  # curve points have order dividing 8·ORDER


def test_low_order_set_is_exactly_the_8_torsion_and_exchange_rejects_it() -> None:
    torsion = {ladder(ORDER, int.from_bytes(psi.hash_to_curve(k), "little"))
               for k in pseudonyms(200, "torsion")}
    assert torsion == set(psi.LOW_ORDER_U) | {None}  # None: the point at infinity
    for u in psi.LOW_ORDER_U:
        for _ in range(3):  # the failure does not depend on the secret: every party skips alike
            with pytest.raises(ValueError):
                X25519PrivateKey.generate().exchange(
                    X25519PublicKey.from_public_bytes(u.to_bytes(32, "little")))
        with pytest.raises(psi.ProtocolError, match="low-order"):
            psi.blind(psi.new_secret(), [u.to_bytes(32, "little")])


def test_first_valid_point_skips_low_order_and_twist_candidates() -> None:
    twist = next(u for u in range(2, 100) if not psi.on_curve(u))
    assert ladder(8 * ORDER, twist) is not None  # really not on the curve
    good = int.from_bytes(psi.hash_to_curve("good"), "little")
    low = sorted(psi.LOW_ORDER_U)
    assert psi.first_valid_point([*low, twist, good, 5]) == good


# --- the protocol's result ---------------------------------------------------------------------


@st.composite
def federations(draw):
    world = draw(st.integers(2, 4))
    universe = pseudonyms(draw(st.integers(0, 30)), f"u{draw(st.integers(0, 10**6))}")
    key_lists = []
    for _ in range(world):
        held = [k for k in universe if draw(st.booleans()) or draw(st.booleans())]
        key_lists.append(draw(st.permutations(held)))
    return key_lists, draw(st.integers(0, world - 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(federations())
def test_every_party_gets_the_exact_intersection_in_the_same_order(federation) -> None:
    key_lists, label_party = federation
    results = psi.align_local(key_lists, label_party, timeout_s=30)
    truth = set.intersection(*(set(k) for k in key_lists))
    keys = aligned_keys(key_lists, results)
    assert all(k == keys[0] for k in keys)
    assert set(keys[0]) == truth and len(keys[0]) == len(truth)
    for r in results:
        assert r.size == len(truth) and r.rows.dtype == np.int64


def test_disjoint_sets_and_an_empty_party_give_an_empty_alignment() -> None:
    for key_lists in ([pseudonyms(5, "a"), pseudonyms(7, "b"), pseudonyms(3, "c")],
                      [pseudonyms(5, "a"), []]):
        results = psi.align_local(key_lists, timeout_s=30)
        assert [r.size for r in results] == [0] * len(key_lists)
        assert all(r.rows.shape == (0,) for r in results)


def test_single_party_keeps_all_its_rows() -> None:
    (result,) = psi.align_local([pseudonyms(4, "solo")])
    assert result.rows.tolist() == [0, 1, 2, 3] and result.bytes_sent == 0


@pytest.mark.parametrize("bad_rank", [0, 2])
def test_duplicate_keys_are_rejected_before_anything_is_sent(bad_rank) -> None:
    key_lists = [pseudonyms(6, "d"), pseudonyms(6, "d"), pseudonyms(6, "d")]
    key_lists[bad_rank] = [*key_lists[bad_rank], key_lists[bad_rank][2]]
    message = rf"party {bad_rank}'s keys have a duplicate \(rows 2 and 6\)"
    with pytest.raises(UserError, match=message) as err:
        psi.align_local(key_lists, timeout_s=30)  # the other parties are stopped, not left waiting
    assert key_lists[bad_rank][2] not in str(err.value)  # errors reach the coordinator: no keys


def test_non_string_keys_and_bad_ranks_are_rejected() -> None:
    with pytest.raises(UserError, match="row 1 is int"):
        psi.align(["a", 3], 0, 1, channel=None)
    with pytest.raises(UserError, match=r"label party 3 not in 0\.\.1"):
        psi.align(["a"], 0, 2, channel=None, label_party=3)


# --- what each party sees ---------------------------------------------------------------------


def test_recognisable_flags_leaky_messages_and_not_foreign_blinding() -> None:
    mine, theirs = psi.new_secret(), psi.new_secret()
    key = pseudonyms(1, "probe")[0]
    h = psi.hash_to_curve(key)
    leaky = [h, psi.blind(mine, [h])[0], key.encode(), bytes.fromhex(key)]
    for payload in leaky:
        assert recognisable(View([mine], [(0, b"\x01" * 64 + payload)]), key)
    assert not recognisable(View([mine], [(0, psi.blind(theirs, [h])[0])]), key)


def test_no_party_can_recognise_any_key_in_what_it_receives(monkeypatch) -> None:
    """Every key (held by all, some or one party) is unrecognisable to every receiver: from a
    guess x a party can compute x, H(x), H(x)^s for its secrets s, and none of these occurs in
    its messages. Parties learn membership only through the label party's final positions."""
    shared, l_only, l_and_1, one_only, two_only = (pseudonyms(n, t) for n, t in [
        (12, "all"), (5, "L"), (4, "L1"), (3, "1"), (6, "2")])
    key_lists = [shared + l_only + l_and_1, l_and_1 + one_only + shared, two_only + shared]
    results, views = run_recorded(key_lists, 0, monkeypatch)
    universe = shared + l_only + l_and_1 + one_only + two_only
    for rank, view in enumerate(views):
        assert len(view.secrets) == (2 if rank == 0 else 1)  # one fresh secret per pair
        for key in universe:
            assert not recognisable(view, key), (rank, key)
    keys = aligned_keys(key_lists, results)
    assert keys[0] == keys[1] == keys[2] and sorted(keys[0]) == sorted(shared)
    # member j receives L's blinded keys (32 bytes each) and the order (4 bytes per common row)
    for j in (1, 2):
        assert [(p, len(m)) for p, m in views[j].received] == [(0, 32 * 21), (0, 4 * 12)]
    # L receives from each j its blinded keys and L's keys re-blinded: sizes, nothing else
    assert [(p, len(m)) for p, m in views[0].received] == [(1, 32 * 19), (1, 32 * 21),
                                                           (2, 32 * 18), (2, 32 * 21)]
    assert results[0].bytes_sent == 2 * 32 * 21 + 2 * 4 * 12
    assert results[1].bytes_sent == 32 * (19 + 21)


def test_messages_and_the_agreed_order_are_shuffled(monkeypatch) -> None:
    keys = pseudonyms(64, "order")
    results, views = run_recorded([keys, keys], 0, monkeypatch)
    a, b = views[0].secrets[0], views[1].secrets[0]
    hashed = [psi.hash_to_curve(k) for k in keys]
    to_member = psi.blind(a, hashed)  # L's blinded keys in L's row order
    received = views[1].received[0][1]
    order = [to_member.index(received[i:i + 32]) for i in range(0, len(received), 32)]
    assert sorted(order) == list(range(64)) and order != list(range(64))
    from_member = psi.blind(b, hashed)
    received = views[0].received[0][1]
    order = [from_member.index(received[i:i + 32]) for i in range(0, len(received), 32)]
    assert sorted(order) == list(range(64)) and order != list(range(64))
    assert results[0].rows.tolist() != list(range(64))
    monkeypatch.undo()
    again = psi.align_local([keys, keys])
    assert again[0].rows.tolist() != results[0].rows.tolist()  # a fresh order every run


# --- transports -------------------------------------------------------------------------------


class FakeCommunicator:
    """CrypTen's send/recv semantics (recv fills a copy of the template) over a list."""

    def __init__(self) -> None:
        self.wire: list = []
        self.elements_sent = 0

    def send(self, tensor, dst: int) -> None:
        self.wire.append(tensor.clone())
        self.elements_sent += tensor.nelement()

    def recv(self, tensor, src: int):
        sent = self.wire.pop(0)
        assert sent.dtype == tensor.dtype and sent.shape == tensor.shape
        return sent.clone()


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 32, 100, 4 * 12])
def test_crypten_channel_frames_any_payload_in_int64_words(size) -> None:
    comm = FakeCommunicator()
    channel = psi.CryptenChannel(comm)
    payload = os.urandom(size)
    channel.send(1, payload)
    assert comm.elements_sent * 8 == wire(size)
    assert channel.recv(0) == payload and comm.wire == []


def test_local_channel_times_out_when_no_peer_answers() -> None:
    hub = psi.LocalHub(2, timeout_s=0.2)
    with pytest.raises(TimeoutError, match="recv 0<-1"):
        hub.channel(0).recv(1)
    with pytest.raises(TimeoutError, match="send 0->1"):
        hub.channel(0).send(1, b"x")


def test_three_real_party_processes_align_through_crypten(tmp_path) -> None:
    universe = pseudonyms(150, "procs")
    rng = np.random.default_rng(5)
    key_lists = [[k for k in universe if rng.random() < p] for p in (1.0, 0.9, 0.95)]
    for keys in key_lists:
        rng.shuffle(keys)
    specs = [{"keys": keys, "label_party": 1} for keys in key_lists]
    results = run_job("psi_align", specs, tmp_path, timeout_s=60)
    rows = [json.loads((tmp_path / f"party_{r}" / "psi_rows.json").read_text()) for r in range(3)]
    keys = [[key_lists[r][i] for i in rows[r]] for r in range(3)]
    truth = set.intersection(*(set(k) for k in key_lists))
    assert keys[0] == keys[1] == keys[2] and set(keys[0]) == truth
    n = [len(k) for k in key_lists]
    size = len(truth)
    assert [r["size"] for r in results] == [size] * 3
    # CrypTen's own statistics count every PSI byte, sent and received, framing included
    # member j sends H(y)^b and H(x)^ab, receives H(x)^a and the order; L does the converse
    label = sum(wire(32 * n[j]) + 2 * wire(32 * n[1]) + wire(4 * size) for j in (0, 2))
    assert results[1]["crypten_bytes"] == label
    assert results[1]["bytes_sent"] == 2 * (32 * n[1] + 4 * size)
    for j in (0, 2):
        member = wire(32 * n[j]) + 2 * wire(32 * n[1]) + wire(4 * size)
        assert results[j]["crypten_bytes"] == member
        assert results[j]["bytes_sent"] == 32 * (n[j] + n[1])


@pytest.mark.slow
def test_three_parties_with_ten_thousand_keys_each() -> None:
    universe = pseudonyms(10_000, "scale")
    rng = np.random.default_rng(1)
    key_lists = [list(universe)] + [[k for k in universe if rng.random() > 0.02] for _ in (1, 2)]
    for keys in key_lists:
        rng.shuffle(keys)
    results = psi.align_local(key_lists, timeout_s=120)
    keys = aligned_keys(key_lists, results)
    assert keys[0] == keys[1] == keys[2]
    assert set(keys[0]) == set(key_lists[1]) & set(key_lists[2])
