"""Vertical federation: the same patients at every party, each party holding other columns.

Record keys are HMAC-SHA256 pseudonyms of the stay id under a per-federation secret drawn from the
operating system's randomness (never from ``--seed``, never written), so parties can align records
only through private set intersection. Each non-label party misses a small random share of the
stays, so that the intersection has real work to do.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence

import numpy as np
from crypten_fl.common.errors import UserError
from crypten_fl.mimic_etl.partition.cohort import STATIC_GROUP

DEFAULT_PARTIES: tuple[tuple[str, ...], ...] = (("vitals",), ("labs",), ("meds", "urine", "static"))
MISSING_SHARE = 0.02  # share of each split's stays that a non-label party lacks
_SECRET_CONTEXT = b"crypten-fl vertical record keys v1"


def parse_feature_groups(spec: str | None, available: Sequence[str]) -> list[tuple[str, ...]]:
    """Parties' feature groups from ``--feature-groups`` (``;`` between parties, ``,`` within).

    Without a spec: `DEFAULT_PARTIES` restricted to the groups the cohort has (empty parties
    dropped). Groups not named in a spec are left out of the federation.

    Args:
        spec: e.g. ``"vitals;labs;meds,urine,static"``.
        available: group names of the cohort (its feature groups plus ``static``).
    """
    if spec is None:
        parties = [tuple(g for g in party if g in available) for party in DEFAULT_PARTIES]
        return [p for p in parties if p]
    parties = [tuple(g.strip() for g in part.split(",") if g.strip()) for part in spec.split(";")]
    if not all(parties):
        raise UserError(f"--feature-groups {spec!r}: every party needs at least one group")
    named = [g for party in parties for g in party]
    unknown = sorted(set(named) - set(available))
    if unknown:
        raise UserError(
            f"--feature-groups {spec!r}: unknown group(s) {', '.join(unknown)}; "
            f"the cohort has {', '.join(available)}"
        )
    if len(set(named)) != len(named):
        raise UserError(f"--feature-groups {spec!r}: a group is given to more than one party")
    return parties


def party_features(features: Sequence[dict[str, object]], groups: Sequence[str]) -> np.ndarray:
    """Indices (cohort column order) of the time-series features in a party's groups."""
    return np.array([j for j, f in enumerate(features) if f["group"] in groups], dtype=np.int64)


def owns_static(groups: Sequence[str]) -> bool:
    """Whether a party with these groups holds the static columns."""
    return STATIC_GROUP in groups


def new_federation_secret() -> bytes:
    """A fresh 32-byte HMAC key: derived from OS randomness, independent of any seed."""
    return hmac.new(secrets.token_bytes(32), _SECRET_CONTEXT, hashlib.sha256).digest()


def pseudonym_keys(stay_ids: np.ndarray, secret: bytes) -> np.ndarray:
    """(N,) hex HMAC-SHA256(secret, str(stay_id)) record keys, the same at every party."""
    return np.array(
        [hmac.new(secret, str(int(s)).encode(), hashlib.sha256).hexdigest() for s in stay_ids],
        dtype=object,
    )


def missing_count(n_rows: int) -> int:
    """Stays a non-label party lacks out of ``n_rows``: ⌈2 %⌉, keeping at least one row."""
    return min(math.ceil(MISSING_SHARE * n_rows), max(n_rows - 1, 0))


def party_rows(
    rows: np.ndarray, label_party: bool, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """A party's rows of one split: a random share dropped (non-label parties), then shuffled.

    Returns the shuffled row indices and the number of rows dropped.
    """
    shuffled = rng.permutation(rows)
    dropped = 0 if label_party else missing_count(len(rows))
    return shuffled[dropped:], dropped
