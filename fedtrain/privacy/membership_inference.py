"""Membership-inference attack scores of one model on stays with known labels (higher = member).

Two attacks, each a function of logits ``(N, L)`` and 0/1 labels ``(N, L)`` (the 12 diseases):

* ``loss`` — Yeom et al. (CSF 2018): a model fits its training records better, so the attack
  thresholds the per-stay loss, here the multi-label binary cross-entropy ℓ(x) averaged over the
  labels. The score is −log ℓ(x); any increasing function of −ℓ gives the same ROC, and the log
  keeps the nearly-zero losses of memorised stays apart on the histogram grid.
* ``shadow`` — offline LiRA with a fixed variance (Carlini et al., S&P 2022, §VI): K reference
  models trained WITHOUT the candidate stays give, per stay and label, the distribution of the
  logit-scaled confidence in the true label, φ = log(p/(1 − p)) = (2y − 1)·z for logit z. The
  target's φ is compared with the reference mean μ (per stay and label) in units of a per-label
  standard deviation σ pooled over stays and references; the L one-sided z-scores are combined
  by Stouffer's method: score = Σ_j (φ_j − μ_j) / σ_j / √L. This calibrates each stay by its own
  difficulty (as Watson et al., ICLR 2022): an easy non-member no longer looks like a member.

Scores are binned on one public grid (:func:`score_histogram`), so hospitals can sum their
histograms securely without revealing any stay's score.
"""

from __future__ import annotations

import numpy as np
import torch
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from torch import nn

ATTACKS = ("loss", "shadow")
#: floor of the per-stay loss before the log (float64 BCE of a memorised stay is ~1e-10 or more)
MIN_LOSS = 1e-12
#: histogram grid: symmetric-log scores sign(s)·log(1 + |s|) in [-GRID_LIMIT, GRID_LIMIT]
GRID_LIMIT = 8.0
DEFAULT_BINS = 8000


@torch.no_grad()
def logits(model: nn.Module, inputs: ModelInputs, batch_size: int = 512) -> np.ndarray:
    """Logits ``(N, L)`` of ``model`` in eval mode, as float64."""
    was_training = model.training
    model.eval()
    try:
        chunks = [model(inputs.x[i : i + batch_size], inputs.static[i : i + batch_size])
                  for i in range(0, len(inputs), batch_size)]
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, 0))
    return torch.cat(chunks).to(torch.float64).numpy()


def confidence(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Logit-scaled confidence in the true label, φ = (2y − 1)·z, per stay and label."""
    return (2.0 * np.asarray(labels, dtype=np.float64) - 1.0) * np.asarray(z, dtype=np.float64)


def per_stay_loss(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Binary cross-entropy with logits, averaged over labels: mean_j log(1 + e^(−φ_j))."""
    return np.logaddexp(0.0, -confidence(z, labels)).mean(axis=1)


def loss_scores(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Yeom et al.'s loss attack: −log ℓ(x) (higher = member)."""
    return -np.log(np.maximum(per_stay_loss(z, labels), MIN_LOSS))


def lira_scores(z: np.ndarray, reference_z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Offline fixed-variance LiRA combined over labels (see the module docstring).

    Args:
        z: the target model's logits ``(N, L)``.
        reference_z: logits of K ≥ 2 reference models ``(K, N, L)``, none trained on the N stays.
        labels: 0/1 labels ``(N, L)``.
    """
    reference_z = np.asarray(reference_z, dtype=np.float64)
    if reference_z.ndim != 3 or reference_z.shape[0] < 2:
        raise ValueError(f"need logits of at least 2 reference models, got {reference_z.shape}")
    phi_ref = confidence(reference_z, labels[None])
    mean = phi_ref.mean(axis=0)
    sigma = np.sqrt(((phi_ref - mean) ** 2).sum(axis=(0, 1))
                    / (phi_ref.shape[1] * (phi_ref.shape[0] - 1)))
    sigma = np.maximum(sigma, 1e-6)
    zscores = (confidence(z, labels) - mean) / sigma
    return zscores.sum(axis=1) / np.sqrt(zscores.shape[1])


def symlog(scores: np.ndarray) -> np.ndarray:
    """sign(s)·log(1 + |s|): increasing, so the ROC is unchanged, with a bounded useful range."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.sign(scores) * np.log1p(np.abs(scores))


def score_histogram(scores: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Counts ``(bins,)`` of ``scores`` on the public grid (equal bins of symlog(score) in
    [-GRID_LIMIT, GRID_LIMIT], the outermost bins also catching anything beyond)."""
    position = (symlog(scores) + GRID_LIMIT) / (2.0 * GRID_LIMIT) * bins
    index = np.clip(np.floor(position), 0, bins - 1).astype(np.int64)
    return np.bincount(index, minlength=bins).astype(np.int64)
