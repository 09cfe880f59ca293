"""Vertical learning under ``--dp-epsilon``: a logistic-regression top model trained entirely
under encryption on every party's stay summaries; nothing per record is ever revealed.

Why a different model: without DP, vertical reveals per-record values at every step (the joint
logits to the label party, each party's bottom-output gradients to that party), so DP has to
noise every record's embedding *and* every record's labels, and the product of the two noises
left the model at chance (docs/privacy.md, "Why tuning would not rescue vertical"). Here no
party learns anything per record during training:

* each party's features are fixed: the per-stay summaries of its own time series and its static
  columns (fedtrain/models/stay_summary.py), computed, clipped and scaled in the clear by the
  party, so that every record's block has L2 norm at most 1 (:func:`party_features`);
* every party secret-shares its block of features once, the label party its labels;
* each step is full-batch gradient descent of a linear top model whose weights stay secret-shared:
  logits, sigmoid, the output gradient g = σ(z) − y clamped to ±``GRADIENT_CLAMP`` per label
  (comparisons under encryption, exact in fixed point), and the gradient sum Σ x_i g_iᵀ are all
  computed under encryption;
* every party adds N(0, (ν·B)²) from its own CSPRNG to its share of that sum before the step, B
  being the bound on one record's gradient, ‖g_i‖·√(‖x_i‖² + 1) ≤ clamp·√L·√(P + 1) for P parties
  (:func:`gradient_bound`), which holds by construction: nothing is compared to it. Each party's
  records are then protected by its own noise alone, whoever else colludes. With ``--dp-noise
  distributed`` each party adds a share N(0, (ν·B)²/(P − 1)) instead, as horizontal's
  distributed DP-SGD does: any one party sees the other P − 1 shares, i.e. the mechanism of
  multiplier ν, and c colluding parties leave ν·√((P − c)/(P − 1))
  (``dp_exchange.distributed_report``). With ``--dp-noise dealer`` the TTP dealer draws
  N(0, (ν·B)²) once and secret-shares it (fedtrain/secure/dealer_noise.py): the calibrated noise
  exactly, against any coalition of parties, as long as the dealer colludes with none.

What leaves the encryption: nothing during training. At prediction (validation each round,
``evaluate``) the logits of the predicted stays reach the label party, as in every vertical run;
they are functions of the noisy weights (post-processing). Accounting: every record is in every
step (sample rate 1, no amplification: nothing is sampled), one Gaussian mechanism of replace-one
sensitivity 2B per step (fedtrain/local_training/dp_exchange.py).
"""

from __future__ import annotations

import math

import torch
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.local_training.dp_exchange import add_noise_to_share, clip_rows
from crypten_fl.fedtrain.models.public_features import PublicProjection
from crypten_fl.fedtrain.models.stay_summary import stay_summary
from crypten_fl.fedtrain.secure.encrypted_head import EncryptedHead
from crypten_fl.fedtrain.secure_noise import SecureRandom

#: a party's block of features is clipped to FEATURE_SCALE·√width before it is divided by that
#: (so its norm is at most 1): z-scored summaries have about unit spread per value, and clipping
#: at half the norm of a typical row trades a little bias for half the noise (simulation,
#: docs/privacy.md)
FEATURE_SCALE = 0.5
#: what a block's norm is clipped to, a little under 1 so that fixed-point encoding (2^-16 per
#: value) cannot take it over 1 for blocks of up to 16,384 values
BLOCK_NORM = 1.0 - 2.0 ** -10
#: each label's output gradient σ(z) − y is clamped to ±GRADIENT_CLAMP under encryption
GRADIENT_CLAMP = 0.5
#: the full-batch gradient-descent rate on the mean gradient is LR_SCALE·n/ν_total, within
#: [MIN_LR, MAX_LR] (``--dp-lr`` overrides): the noise on each step's mean gradient is
#: ν_total·B/n, so the rate grows with the records and shrinks with the noise (simulation,
#: docs/privacy.md)
LR_SCALE = 0.017
MIN_LR, MAX_LR = 0.5, 8.0
#: rows per encrypted forward/backward pass (the gradient of a step sums over all of them)
CHUNK = 4096
MECHANISM = ("Vertical, linear top model trained under encryption on every party's per-stay "
             "summaries (each record's block of features clipped to norm 1 by its party; the "
             "output gradient sigmoid(z) - y clamped to +-{clamp} per label under encryption): "
             "full-batch gradient descent, every record in every step (no amplification); "
             "Gaussian noise of std nu*B on every step's encrypted gradient sum (--dp-noise "
             "local: each party adds its own to its share; distributed: each a 1/(P-1) share of "
             "the variance; dealer: the TTP dealer's one draw, secret-shared), "
             "B = {clamp}*sqrt(L)*sqrt(P + 1) the bound on one record's gradient. Replace-one "
             "sensitivity 2B: one accountant step of multiplier nu/2 per step")


def party_features(x: torch.Tensor, static: torch.Tensor,
                   projection: PublicProjection | None = None) -> torch.Tensor:
    """``(N, 5F + S)``: the stay summaries of ``x (N, T, 2F)`` and the static vector, or with a
    public ``projection`` (``--init-from``) its L logits of them, each row clipped to norm
    ``FEATURE_SCALE·√width`` and divided by it (row norm ≤ 1)."""
    features = torch.cat([stay_summary(x, x.shape[2] // 2), static], dim=1)
    if projection is not None:
        features = projection(features)
    scale = FEATURE_SCALE * math.sqrt(features.shape[1])
    return clip_rows(features / scale, BLOCK_NORM)


def feature_width(n_features: int, n_static: int) -> int:
    """Width of :func:`party_features` for ``n_features`` time series and ``n_static`` values."""
    return 5 * n_features + n_static


def gradient_bound(n_parties: int, n_labels: int) -> float:
    """B: the L2 norm of one record's gradient of the linear top model, (x_i g_iᵀ, g_i), is at
    most ‖g_i‖·√(‖x_i‖² + 1) ≤ GRADIENT_CLAMP·√L · √(P + 1) (every block has norm ≤ 1)."""
    return GRADIENT_CLAMP * math.sqrt(n_labels) * math.sqrt(n_parties + 1)


def learning_rate(records: int, total_multiplier: float) -> float:
    """The default rate for ``records`` aligned training stays when the noise on each step's
    gradient sum has std ``total_multiplier``·B (all parties' noise together)."""
    if total_multiplier == 0:
        return MAX_LR
    return min(max(LR_SCALE * records / total_multiplier, MIN_LR), MAX_LR)


def encrypted_chunks(features: crypten.CrypTensor) -> list[crypten.CrypTensor]:
    """``features`` in chunks of at most CHUNK rows (one encrypted pass each)."""
    n = features.size(0)
    return [features[start : start + CHUNK] for start in range(0, n, CHUNK)]


def noisy_gradient_step(top: EncryptedHead, features: list[crypten.CrypTensor],
                        labels: list[crypten.CrypTensor], *, lr: float, n: int, std: float,
                        rng: SecureRandom, dealer: bool = False) -> None:
    """One step of full-batch gradient descent under encryption: w ← w − lr·(Σ_i ∇_i + noise)/n,
    this party's noise N(0, std²) added to its share of the gradient sum (``dealer``: its share
    of the dealer's one N(0, std²))."""
    top.zero_grad()
    for x, y in zip(features, labels, strict=True):
        z = top(x)
        with crypten.no_grad():
            g = (z.sigmoid() - y).hardtanh(-GRADIENT_CLAMP, GRADIENT_CLAMP)
        z.backward(g)  # accumulates Σ x_i g_iᵀ and Σ g_i into the top model's gradients
    grads = [p.grad for p in top.model.parameters()]
    add_noise_to_share(grads, std, rng, dealer=dealer)
    top.sgd_step(lr / n)
