"""Vertical learning under DP: the experiments behind its settings (docs/privacy.md).

    .venv/bin/python bench/vertical_dp_sim.py --fed VFED [--epsilons 8,3,1] [--seeds 5,6] \
        [--steps 40] [--lr RATE | --lr-scale 0.017] [--feature-scale 0.5] [--gradient-clamp 0.5] \
        [--noise local|distributed|dealer] \
        [--public-model MODEL] \
        [--whiten-from PUBLIC_VFED [--components K] [--shrink S]] \
        [--sufficient-statistics LAMBDA [--public-gram PUBLIC_VFED]]

A plaintext simulation of exactly what `crypten-fl train --strategy vertical --dp-epsilon E`
computes under encryption (fedtrain/strategies/vertical_private.py): every party's stay summaries
from the library's feature map, aligned on the record keys (PSI aligns them in a real run), full-
batch gradient descent of a linear model with the output gradient clamped, the noise of every
party (ν·B each, or 1/(P − 1) shares) added to each step's gradient sum, ν calibrated by the
library's replace-one accountant. What it leaves out: CrypTen's fixed point and sigmoid
approximation (≈ 10⁻³). Prints one line per setting and seed (test macro-AUROC on the aligned
test stays) and the machine; seconds per run, not minutes, so that settings can be compared.

``--public-model MODEL`` maps each party's block by its public feature map first, as ``train
--strategy vertical --dp-epsilon E --init-from MODEL`` does (fedtrain/models/public_features.py).

Two alternatives that were studied and not adopted (docs/privacy.md, "Vertical: what else was
tried"): ``--whiten-from`` replaces each party's block by its coordinates in the principal
components of the same block on a public federation (a vertical partition of a public synthetic
cohort), scaled to unit variance (eigenvalues + S × their mean), the first K kept, before the
library's scaling and clipping; ``--sufficient-statistics`` releases the noisy Gram matrix XᵀX and
XᵀY once (one Gaussian mechanism, sensitivity √((P + 1)² + (P + 1)·L) for rows of norm ≤ √(P + 1)
with the bias) and solves ridge regression with λ = LAMBDA, or takes XᵀX from ``--public-gram``
(noise on XᵀY only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from crypten_fl.fedtrain.data.preprocess import Normalizer, local_moments
from crypten_fl.fedtrain.local_training import dp_recipe
from crypten_fl.fedtrain.local_training.dp_exchange import calibrate, clip_rows, total_noise_std
from crypten_fl.fedtrain.models import public_features
from crypten_fl.fedtrain.models.pretrained import read_pretrained
from crypten_fl.fedtrain.models.stay_summary import stay_summary
from crypten_fl.fedtrain.sessions.vertical import holds_static
from crypten_fl.fedtrain.strategies import vertical_private
from crypten_fl.mimic_etl.hospital_data import load_split
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine import describe

SPLITS = ("train", "test")


Transform = Callable[[int, torch.Tensor], torch.Tensor]


def summaries(fed: Path) -> tuple[dict[str, list[torch.Tensor]], dict[str, torch.Tensor], int]:
    """Every party's unscaled stay summaries and static values (``party_features`` before its
    scaling and clipping) of the stays all parties hold, one block per party; the label party's
    labels; the number of parties."""
    parties = sorted(fed.glob("hospital_*"))
    splits = {p: {s: load_split(p, s) for s in SPLITS} for p in parties}
    common = {s: sorted(set.intersection(*[set(splits[p][s].keys.tolist()) for p in parties]))
              for s in SPLITS}
    blocks: dict[str, list[torch.Tensor]] = {s: [] for s in SPLITS}
    labels: dict[str, torch.Tensor] = {}
    for party in parties:
        train = splits[party]["train"]
        has_static = holds_static(train)
        normalizer = Normalizer.from_moments(
            local_moments(train.values, train.mask, train.static if has_static else None))
        for name, split in splits[party].items():
            position = {k: i for i, k in enumerate(split.keys.tolist())}
            rows = np.asarray([position[k] for k in common[name]])
            inputs = normalizer.model_inputs(
                split.values[rows], split.mask[rows],
                split.static[rows] if has_static else None,
                None if split.labels is None else split.labels[rows])
            blocks[name].append(torch.cat([stay_summary(inputs.x, inputs.x.shape[2] // 2),
                                           inputs.static], dim=1))
            if inputs.labels is not None:
                labels[name] = inputs.labels
    return blocks, labels, len(parties)


def scaled(block: torch.Tensor) -> torch.Tensor:
    """The library's scaling and clipping of a party's block (``party_features``)."""
    scale = vertical_private.FEATURE_SCALE * math.sqrt(block.shape[1])
    return clip_rows(block / scale, vertical_private.BLOCK_NORM)


def whitening(public: list[torch.Tensor], components: int, shrink: float) -> Transform:
    """Party p's block ↦ its first ``components`` principal coordinates on the public blocks,
    divided by √(eigenvalue + shrink × mean eigenvalue)."""
    maps = []
    for block in public:
        mean = block.mean(0)
        values, vectors = torch.linalg.eigh(torch.cov((block - mean).T))
        values, vectors = values.flip(0).clamp_min(1e-6), vectors.flip(1)
        keep = min(components, block.shape[1])
        maps.append((mean, vectors[:, :keep] / (values[:keep] + shrink * values.mean()).sqrt()))
    return lambda p, block: (block - maps[p][0]) @ maps[p][1]


def public_map(fed: Path, model: Path, seed: int) -> Transform:
    """Party p's block ↦ the L logits of its public feature map (``--init-from MODEL``): the
    library's logistic regression fitted on its columns of MODEL's public stays."""
    rows = public_features.read(read_pretrained(model))
    maps = []
    for party in sorted(fed.glob("hospital_*")):
        train = load_split(party, "train")
        has_static = holds_static(train)
        maps.append(public_features.fit_projection(rows, list(train.feature_names), has_static,
                                                   seed))
    return lambda p, block: maps[p](block)


def aligned_features(fed: Path, transform: Transform | None = None
                     ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Every party's features (``party_features``, after ``transform`` of its block if given)
    side by side; the label party's labels; the number of parties."""
    blocks, labels, parties = summaries(fed)
    features = {s: torch.cat([scaled(b if transform is None else transform(p, b))
                              for p, b in enumerate(v)], 1) for s, v in blocks.items()}
    return features, labels, parties


def macro_auroc(y: torch.Tensor, p: torch.Tensor) -> float:
    y_np, p_np = y.numpy(), p.numpy()
    return float(np.mean([roc_auc_score(y_np[:, j], p_np[:, j]) for j in range(y.shape[1])
                          if 0 < y_np[:, j].sum() < len(y_np)]))


def run(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor], parties: int, *,
        epsilon: float | None, steps: int, lr: float | None, noise: str, seed: int
        ) -> float:
    """Test macro-AUROC of one simulated run."""
    n, width = x["train"].shape
    labels = y["train"].shape[1]
    bound = vertical_private.gradient_bound(parties, labels)
    nu = (calibrate(epsilon, 1.0, steps, dp_recipe.default_delta(n))
          if epsilon is not None else 0.0)
    total_std = total_noise_std(nu, bound, parties, noise)  # P draws, or the dealer's one
    if lr is None:
        lr = vertical_private.learning_rate(n, total_std / bound)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = torch.nn.Linear(width, labels)  # the public initialisation, as in a real run
    w, b = layer.weight.detach().T.clone(), layer.bias.detach().clone()
    clamp = vertical_private.GRADIENT_CLAMP
    for _ in range(steps):
        g = (torch.sigmoid(x["train"] @ w + b) - y["train"]).clamp(-clamp, clamp)
        gw = x["train"].T @ g + torch.randn(w.shape, generator=gen) * total_std
        gb = g.sum(0) + torch.randn(b.shape, generator=gen) * total_std
        w, b = w - lr * gw / n, b - lr * gb / n
    return macro_auroc(y["test"], torch.sigmoid(x["test"] @ w + b))


def sufficient_statistics(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor], parties: int,
                          *, epsilon: float | None, ridge: float, noise: str, seed: int,
                          public_gram: torch.Tensor | None = None) -> float:
    """Test macro-AUROC of ridge regression on noisy sufficient statistics (one release)."""
    n = len(x["train"])
    ones = torch.ones(n, 1)
    design = torch.cat([x["train"], ones], 1).double()
    gram, cross = design.T @ design, design.T @ y["train"].double()
    if public_gram is not None:
        gram = public_gram * (n / float(public_gram[-1, -1]))  # the public rows, rescaled to n
    if epsilon is not None:
        width, labels = gram.shape[0], cross.shape[1]
        sensitivity = math.sqrt((parties + 1) ** 2 + (parties + 1) * labels)
        nu = calibrate(epsilon, 1.0, 1, dp_recipe.default_delta(n))
        std = total_noise_std(nu, sensitivity, parties, noise)
        gen = torch.Generator().manual_seed(seed)
        if public_gram is None:
            upper = torch.randn(width, width, generator=gen, dtype=torch.float64).triu() * std
            gram = gram + upper + upper.triu(1).T
        cross = cross + torch.randn(width, labels, generator=gen, dtype=torch.float64) * std
    weights = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=torch.float64), cross)
    test = torch.cat([x["test"], torch.ones(len(x["test"]), 1)], 1).double()
    return macro_auroc(y["test"], (test @ weights).float())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fed", type=Path, required=True, help="a vertical federation")
    parser.add_argument("--epsilons", default="inf,8,3,1", help="'inf' = no noise")
    parser.add_argument("--seeds", default="5,6")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=None,
                        help="default: the library's rule (vertical_private.learning_rate)")
    parser.add_argument("--lr-scale", type=float, default=vertical_private.LR_SCALE)
    parser.add_argument("--feature-scale", type=float, default=vertical_private.FEATURE_SCALE)
    parser.add_argument("--gradient-clamp", type=float, default=vertical_private.GRADIENT_CLAMP)
    parser.add_argument("--noise", choices=("local", "distributed", "dealer"), default="local")
    parser.add_argument("--whiten-from", type=Path, default=None,
                        help="a public vertical federation: whiten each block on it")
    parser.add_argument("--components", type=int, default=10**6)
    parser.add_argument("--shrink", type=float, default=0.0)
    parser.add_argument("--public-model", type=Path, default=None,
                        help="a MODEL of `crypten-fl pretrain`: each party's block mapped by "
                             "its public feature map (train --init-from)")
    parser.add_argument("--sufficient-statistics", type=float, default=None, metavar="LAMBDA",
                        help="ridge regression on noisy XᵀX, XᵀY instead of gradient descent")
    parser.add_argument("--public-gram", type=Path, default=None,
                        help="with --sufficient-statistics: XᵀX from this public federation")
    args = parser.parse_args()
    # the settings under study replace the library's constants for this process only
    vertical_private.FEATURE_SCALE = args.feature_scale
    vertical_private.GRADIENT_CLAMP = args.gradient_clamp
    vertical_private.LR_SCALE = args.lr_scale
    transform = (None if args.whiten_from is None else
                 whitening(summaries(args.whiten_from)[0]["train"], args.components, args.shrink))
    if args.public_model is not None:  # the run's --seed fits the map: the first seed here
        transform = public_map(args.fed, args.public_model, int(args.seeds.split(",")[0]))
    x, y, parties = aligned_features(args.fed, transform)
    public_gram = None
    if args.public_gram is not None:
        rows = aligned_features(args.public_gram, transform)[0]["train"]
        design = torch.cat([rows, torch.ones(len(rows), 1)], 1).double()
        public_gram = design.T @ design
    print("machine:", json.dumps(describe()), file=sys.stderr)
    for text in args.epsilons.split(","):
        epsilon = None if text == "inf" else float(text)
        if args.sufficient_statistics is None:
            scores = [run(x, y, parties, epsilon=epsilon, steps=args.steps, lr=args.lr,
                          noise=args.noise, seed=int(s)) for s in args.seeds.split(",")]
        else:
            scores = [sufficient_statistics(x, y, parties, epsilon=epsilon,
                                            ridge=args.sufficient_statistics,
                                            noise=args.noise, seed=int(s),
                                            public_gram=public_gram)
                      for s in args.seeds.split(",")]
        print(json.dumps({"epsilon": text, "noise": args.noise, "steps": args.steps,
                          "lr": args.lr or f"rule, scale {args.lr_scale}",
                          "feature_scale": args.feature_scale,
                          "gradient_clamp": args.gradient_clamp,
                          "whiten_from": args.whiten_from and str(args.whiten_from),
                          "public_model": args.public_model and str(args.public_model),
                          "components": args.components, "shrink": args.shrink,
                          "sufficient_statistics": args.sufficient_statistics,
                          "public_gram": args.public_gram and str(args.public_gram),
                          "train_stays": len(x["train"]),
                          "test_macro_auroc": [round(v, 4) for v in scores],
                          "mean": round(float(np.mean(scores)), 4)}))


if __name__ == "__main__":
    main()
