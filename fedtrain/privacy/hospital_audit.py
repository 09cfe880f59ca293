"""One hospital's own membership-inference analysis: its final model on its own stays.

Runs inside the hospital's process with its session (its own splits, preprocessed with the
federation's normalisation statistics) after the final model was loaded into
``session.trainer``. Nothing here communicates: the candidates, the scores and the reference
models never leave the hospital. What it returns — member and non-member scores — is turned
into this hospital's own figures and into a histogram on the public grid; only the histogram
goes into the secure sum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from crypten_fl.fedtrain.privacy.membership_inference import lira_scores, logits, loss_scores
from crypten_fl.fedtrain.privacy.reference import concat, reference_logits, take
from crypten_fl.fedtrain.privacy.sampling import (
    AuditSets,
    reference_subsets,
    sample_audit_sets,
    strata,
)

#: fewer member/non-member pairs than this cannot give a meaningful ROC
MIN_PAIRS = 10
#: fewer reference-pool stays than this cannot train a reference model
MIN_REFERENCE_POOL = 20


@dataclass(frozen=True)
class AttackSettings:
    """How one hospital attacks its model (``references``/``epochs``: the shadow attack)."""

    attack: str
    references: int
    epochs: int
    fraction: float
    lr: float
    batch_size: int
    seed: int


@dataclass(frozen=True)
class HospitalScores:
    """Attack scores of the hospital's members and non-members, and how they were drawn."""

    members: np.ndarray
    non_members: np.ndarray
    sets: AuditSets
    stratum_sizes: dict[str, int]

    def describe(self) -> dict[str, Any]:
        """What audit.json records about the candidates (counts only)."""
        return {"pairs_per_stratum": self.stratum_sizes,
                "reference_pool": self.sets.n_reference}


def _stratum_sizes(labels: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(strata(labels), return_counts=True)
    return {("3+" if v == 3 else str(v)): int(c) for v, c in zip(values, counts, strict=True)}


def score_hospital(session: Any, hospital: int, settings: AttackSettings,
                   rng: np.random.Generator,
                   on_reference: Callable[[int], None] = lambda k: None,
                   initial: Mapping[str, torch.Tensor] | None = None) -> HospitalScores:
    """Draw the candidates, and score them with the loaded final model (and reference models).

    Args:
        session: the hospital's session (``train``, ``val``, ``tests[hospital]``, ``trainer``).
        hospital: this hospital's index (its held-out stays are ``val`` + ``tests[hospital]``).
        on_reference: called with the number of reference models trained so far.
        initial: the public weights the run started from (``--init-from``), which the
            reference models start from too; None: they are re-initialised.
    """
    train = session.train
    held_out = concat([session.val, session.tests[hospital]])
    sets = sample_audit_sets(train.labels.numpy(), held_out.labels.numpy(), rng)
    if sets.n_pairs < MIN_PAIRS:
        raise RuntimeError(f"hospital {hospital}: only {sets.n_pairs} member/non-member pairs "
                           f"(need {MIN_PAIRS}); its splits are too small to audit")
    candidates = concat([take(train, sets.members), take(held_out, sets.non_members)])
    labels = candidates.labels.numpy()
    target = logits(session.trainer.model, candidates)
    if settings.attack == "loss":
        scores = loss_scores(target, labels)
    elif settings.attack == "shadow":
        pool = concat([take(train, sets.reference_train),
                       take(held_out, sets.reference_held_out)])
        if len(pool) < MIN_REFERENCE_POOL:
            raise RuntimeError(f"hospital {hospital}: only {len(pool)} stays left for reference "
                               f"models (need {MIN_REFERENCE_POOL}); use --attack loss")
        subsets = reference_subsets(len(pool), settings.references, rng, settings.fraction)
        reference = reference_logits(session.trainer.model, pool, subsets, candidates,
                                     epochs=settings.epochs, lr=settings.lr,
                                     batch_size=settings.batch_size,
                                     seed=settings.seed * 100 + hospital,
                                     initial=initial, on_model=on_reference)
        scores = lira_scores(target, reference, labels)
    else:
        raise ValueError(f"unknown attack {settings.attack!r}")
    m = sets.n_pairs
    return HospitalScores(scores[:m], scores[m:], sets, _stratum_sizes(labels[:m]))
