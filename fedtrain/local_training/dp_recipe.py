"""The DP recipe: DP-SGD's batch size, learning rate and clipping, chosen from public facts.

A model trained with DP-SGD at the settings that suit plain training is mostly noise: every
step adds Gaussian noise of norm σ·C·√d / B to an averaged gradient of norm at most C. The
recipe chooses, for each hospital, from its privacy budget ε and its training-set size N only
(never from validation results, which would themselves leak and need accounting):

* **Automatic clipping** (Bu et al., NeurIPS 2023): each per-example gradient g is scaled by
  C / (‖g‖ + γ). Every example then contributes a unit-scale direction, as flat clipping does
  when C is below every gradient norm, and no clipping norm has to be tuned. Adam is invariant
  to the scale C, so C = 1.
* **A learning rate for DP.** Adam divides each step by the root of its second moment, which
  under DP is dominated by the noise: at the plain learning rate the signal's share of each
  step is tiny and training stalls. The DP rate is :data:`DP_LR` for a run of
  :data:`DP_LR_STEPS` steps and scales as 1/√T with the run's T steps (the step size of SGD
  with a fixed budget of noisy steps), capped at :data:`MAX_DP_LR`; chosen on synthetic
  federations (docs/privacy.md, "The DP recipe"). T follows from public facts: the epochs and
  the steps per epoch.
* **Batch size.** For a fixed number of passes over the data, the noise per averaged gradient,
  σ/B, hardly depends on B once σ is large (Sander et al., "TAN without a burn", ICML 2023), so
  smaller batches give more steps for the same privacy, down to where σ falls towards 1 and
  the linear regime ends. The recipe takes the expected batch :data:`DP_BATCH` capped at a
  quarter of N (at least four steps per pass, so that subsampling amplifies).

* **No dropout.** Under DP-SGD the noise, not overfitting, limits what is learned: dropout's
  extra randomness only weakens each step's signal. Without it the demo federation at ε = 3
  reached 0.748 macro-AUROC on average against 0.732 with 0.1 (four seeds each,
  docs/privacy.md), and a DP step costs ≈ 20 ms less (dropout masks on the CPU are slow).

* **Fewer trainable parameters from a pretrained start.** The noise norm grows with √d. From a
  public pretrained model (``--init-from``) only the head (3,876 of 80,932 parameters) is
  trained under DP: the encoder keeps its public weights, the noise is spread over 16× fewer
  coordinates, and a DP step costs a fraction of a full one (no per-sample gradients for the
  encoder). From a random start every parameter is trained (a frozen random encoder caps what
  the head can learn).

Every choice can be overridden (``--dp-batch-size``, ``--dp-lr``, ``--dp-clipping``,
``--max-grad-norm``, ``--dp-trainable``, ``--dropout``); privacy.json records the settings used
and which ones the recipe chose.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: per-sample gradient clipping rules: Opacus' flat clipping, automatic clipping (Bu et al.)
CLIPPING_MODES = ("automatic", "flat")
#: what DP-SGD trains: every parameter, or the head only (the encoder stays as it started)
TRAINABLE_PARTS = ("all", "head")
#: parameter-name prefixes trained for each choice (None: all)
TRAINABLE_PREFIXES: dict[str, tuple[str, ...] | None] = {"all": None, "head": ("head",)}
#: Adam learning rate of DP-SGD for a run of DP_LR_STEPS steps (docs/privacy.md, "The DP recipe";
#: 1e-2 for the model before the stay summaries and the linear head)
DP_LR = 5e-3
#: the run length at which DP_LR was chosen (the demo federation: 40 epochs × 5 steps)
DP_LR_STEPS = 200
#: the rate of shorter runs is capped here
MAX_DP_LR = 1e-2
#: expected Poisson batch of DP-SGD, before the cap at a quarter of the training split
DP_BATCH = 128
#: smallest expected batch the recipe picks (tiny batches make per-step noise dominate)
MIN_DP_BATCH = 16
#: default per-sample clipping rule and bound
DP_CLIPPING = "automatic"
DP_MAX_GRAD_NORM = 1.0
#: dropout of the model trained with DP (docs/privacy.md, "The DP recipe")
DP_DROPOUT = 0.0
#: dropout of the model trained without DP (the reference study's)
PLAIN_DROPOUT = 0.1


def model_dropout(dropout: float | None, private: bool) -> float:
    """The model's dropout: ``--dropout`` if given, else the recipe's (DP) or the plain one."""
    if dropout is not None:
        return dropout
    return DP_DROPOUT if private else PLAIN_DROPOUT


@dataclass(frozen=True)
class DPRecipe:
    """The DP-SGD settings of one hospital and which of them the recipe chose."""

    batch_size: int
    lr: float
    clipping: str
    max_grad_norm: float
    trainable: str
    dropout: float
    chosen: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "chosen": list(self.chosen)}


def default_delta(n_train: int) -> float:
    """δ when ``--dp-delta`` is not given: N^−1.1, strictly below 1/N (so that publishing one
    record in the clear is not (ε, δ)-DP) and decreasing with N."""
    return float(n_train) ** -1.1


def clip_bound(max_grad_norm: float | None) -> float:
    """The per-record bound C: ``--max-grad-norm``, else the recipe's."""
    return DP_MAX_GRAD_NORM if max_grad_norm is None else max_grad_norm


def recipe_batch(n_train: int) -> int:
    """The expected Poisson batch for a training split of ``n_train`` records."""
    return max(1, min(DP_BATCH, max(MIN_DP_BATCH, n_train // 4), n_train))


def epoch_steps(n_train: int, batch: int) -> int:
    """DP-SGD steps per pass over ``n_train`` records at expected batch ``batch``: ⌈N / B⌉ (at
    least 1; the sample rate is its inverse)."""
    return max(1, math.ceil(n_train / max(1, batch)))


def recipe_lr(steps: int) -> float:
    """Adam's rate for a run of ``steps`` DP-SGD steps: DP_LR·√(DP_LR_STEPS / steps), at most
    MAX_DP_LR."""
    return min(MAX_DP_LR, DP_LR * math.sqrt(DP_LR_STEPS / max(1, steps)))


def choose(n_train: int, *, epochs: int, steps_per_epoch: int | None = None,
           pretrained: bool = False, batch_size: int | None = None,
           lr: float | None = None, clipping: str | None = None,
           max_grad_norm: float | None = None, trainable: str | None = None,
           dropout: float | None = None) -> DPRecipe:
    """The recipe for a hospital with ``n_train`` training records, training for ``epochs``
    passes of ``steps_per_epoch`` steps (None: its own, ⌈n_train / batch⌉; distributed noise:
    the federation's), starting from a public pretrained model or not; a setting given (not
    None) is used as it is."""
    given = {"batch_size": batch_size, "lr": lr, "clipping": clipping,
             "max_grad_norm": max_grad_norm, "trainable": trainable, "dropout": dropout}
    chosen = tuple(name for name, value in given.items() if value is None)
    batch = batch_size if batch_size is not None else recipe_batch(n_train)
    steps = epochs * (steps_per_epoch if steps_per_epoch is not None
                      else epoch_steps(n_train, batch))
    return DPRecipe(
        batch_size=batch,
        lr=lr if lr is not None else recipe_lr(steps),
        clipping=clipping if clipping is not None else DP_CLIPPING,
        max_grad_norm=clip_bound(max_grad_norm),
        trainable=trainable if trainable is not None else ("head" if pretrained else "all"),
        dropout=model_dropout(dropout, private=True),
        chosen=chosen,
    )
