"""Members and non-members of one hospital's audit: equal-sized, label-stratified, seeded.

Members are stays of the hospital's training split; non-members are its held-out stays (val +
test) — the same hospital, so the attack cannot win by telling hospitals apart. Both are drawn in
equal numbers within each stratum of the **number of positive labels** (0, 1, 2, 3 or more):
stays with many diagnoses have higher losses, and unequal label burdens would let the attack
score on that instead of membership. Everything the hospital owns but does not use as a
candidate forms the **reference pool**, on which the ``shadow`` attack trains its reference
models: they never see a candidate, so they are "OUT" models for every candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: strata: number of positive labels, with everything from MAX_STRATUM up in one stratum
MAX_STRATUM = 3


@dataclass(frozen=True)
class AuditSets:
    """Indices into the hospital's training split and held-out (val + test) stays."""

    members: np.ndarray  # into the training split
    non_members: np.ndarray  # into the held-out stays
    reference_train: np.ndarray  # training stays that are not candidates
    reference_held_out: np.ndarray  # held-out stays that are not candidates

    @property
    def n_pairs(self) -> int:
        return int(self.members.size)

    @property
    def n_reference(self) -> int:
        return int(self.reference_train.size + self.reference_held_out.size)


def strata(labels: np.ndarray) -> np.ndarray:
    """Stratum of each stay: its number of positive labels, capped at MAX_STRATUM."""
    return np.minimum(np.asarray(labels).sum(axis=1), MAX_STRATUM).astype(np.int64)


def rng_for(seed: int, hospital: int) -> np.random.Generator:
    """The audit's random stream at one hospital (independent across hospitals)."""
    return np.random.default_rng([seed, hospital])


def sample_audit_sets(train_labels: np.ndarray, held_out_labels: np.ndarray,
                      rng: np.random.Generator) -> AuditSets:
    """Per stratum, min(#train, #held-out) stays drawn without replacement from each side."""
    train_strata, held_strata = strata(train_labels), strata(held_out_labels)
    members: list[np.ndarray] = []
    non_members: list[np.ndarray] = []
    for stratum in range(MAX_STRATUM + 1):
        train_idx = np.flatnonzero(train_strata == stratum)
        held_idx = np.flatnonzero(held_strata == stratum)
        size = min(train_idx.size, held_idx.size)
        members.append(rng.choice(train_idx, size=size, replace=False))
        non_members.append(rng.choice(held_idx, size=size, replace=False))
    chosen_m = np.sort(np.concatenate(members)).astype(np.int64)
    chosen_n = np.sort(np.concatenate(non_members)).astype(np.int64)
    return AuditSets(
        members=chosen_m, non_members=chosen_n,
        reference_train=np.setdiff1d(np.arange(len(train_strata)), chosen_m),
        reference_held_out=np.setdiff1d(np.arange(len(held_strata)), chosen_n),
    )


def reference_subsets(n_pool: int, models: int, rng: np.random.Generator,
                      fraction: float = 0.5) -> list[np.ndarray]:
    """A random ``fraction`` of the reference pool for each reference model (LiRA: a half)."""
    size = min(max(int(n_pool * fraction), 1), n_pool)
    return [np.sort(rng.choice(n_pool, size=size, replace=False)) for _ in range(models)]
