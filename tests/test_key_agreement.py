"""The secure sum's X25519 keys are bound to identities: a substituted key is refused."""

from __future__ import annotations

import pytest
from helpers.parties import run_job


@pytest.mark.parametrize("forge", ["unsigned", "replayed signature"])
def test_a_substituted_public_key_is_refused_by_every_other_party(tmp_path, forge: str) -> None:
    results = run_job("substituted_key", [{"forge": forge}] * 3, tmp_path / "w", timeout_s=30)
    for rank, result in enumerate(results):
        if rank == 1:
            assert result["outcome"] == "accepted"  # its own view was not tampered with
        else:
            assert result["outcome"].startswith(
                "the key-agreement public key of hospital_1 (rank 1) is not signed by "
                "hospital_1: "), result


def test_untampered_signed_keys_are_accepted(tmp_path) -> None:
    results = run_job("substituted_key", [{"forge": ""}] * 3, tmp_path / "w", timeout_s=30)
    assert [r["outcome"] for r in results] == ["accepted"] * 3
