"""Vertical learning under DP: the experiments behind its settings (docs/privacy.md).

    .venv/bin/python bench/vertical_dp_sim.py --fed VFED [--epsilons 8,3,1] [--seeds 5,6] \
        [--steps 40] [--lr RATE | --lr-scale 0.017] [--feature-scale 0.5] [--gradient-clamp 0.5] \
        [--noise local|distributed]

A plaintext simulation of exactly what `crypten-fl train --strategy vertical --dp-epsilon E`
computes under encryption (fedtrain/strategies/vertical_private.py): every party's stay summaries
from the library's feature map, aligned on the record keys (PSI aligns them in a real run), full-
batch gradient descent of a linear model with the output gradient clamped, the noise of every
party (ν·B each, or 1/(P − 1) shares) added to each step's gradient sum, ν calibrated by the
library's replace-one accountant. What it leaves out: CrypTen's fixed point and sigmoid
approximation (≈ 10⁻³). Prints one line per setting and seed (test macro-AUROC on the aligned
test stays) and the machine; seconds per run, not minutes, so that settings can be compared.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from crypten_fl.fedtrain.data.preprocess import Normalizer, local_moments
from crypten_fl.fedtrain.local_training import dp_recipe
from crypten_fl.fedtrain.local_training.dp_exchange import calibrate, noise_std
from crypten_fl.fedtrain.strategies import vertical_private
from crypten_fl.mimic_etl.hospital_data import load_split
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine import describe

SPLITS = ("train", "test")


def aligned_features(fed: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Every party's features of the stays all parties hold, side by side; the label party's
    labels; the number of parties."""
    parties = sorted(fed.glob("hospital_*"))
    splits = {p: {s: load_split(p, s) for s in SPLITS} for p in parties}
    common = {s: sorted(set.intersection(*[set(splits[p][s].keys.tolist()) for p in parties]))
              for s in SPLITS}
    features: dict[str, list[torch.Tensor]] = {s: [] for s in SPLITS}
    labels: dict[str, torch.Tensor] = {}
    for party in parties:
        train = splits[party]["train"]
        has_static = bool(set(train.static.columns) & {"age", "sex"})
        normalizer = Normalizer.from_moments(
            local_moments(train.values, train.mask, train.static if has_static else None))
        for name, split in splits[party].items():
            position = {k: i for i, k in enumerate(split.keys.tolist())}
            rows = np.asarray([position[k] for k in common[name]])
            inputs = normalizer.model_inputs(
                split.values[rows], split.mask[rows],
                split.static[rows] if has_static else None,
                None if split.labels is None else split.labels[rows])
            features[name].append(vertical_private.party_features(inputs.x, inputs.static))
            if inputs.labels is not None:
                labels[name] = inputs.labels
    return {s: torch.cat(v, 1) for s, v in features.items()}, labels, len(parties)


def macro_auroc(y: torch.Tensor, p: torch.Tensor) -> float:
    y_np, p_np = y.numpy(), p.numpy()
    return float(np.mean([roc_auc_score(y_np[:, j], p_np[:, j]) for j in range(y.shape[1])
                          if 0 < y_np[:, j].sum() < len(y_np)]))


def run(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor], parties: int, *,
        epsilon: float | None, steps: int, lr: float | None, distributed: bool, seed: int
        ) -> float:
    """Test macro-AUROC of one simulated run."""
    n, width = x["train"].shape
    labels = y["train"].shape[1]
    bound = vertical_private.gradient_bound(parties, labels)
    nu = (calibrate(epsilon, 1.0, steps, dp_recipe.default_delta(n))
          if epsilon is not None else 0.0)
    share = noise_std(nu, bound, parties, distributed)
    total_std = share * math.sqrt(parties)  # P independent shares
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
    parser.add_argument("--noise", choices=("local", "distributed"), default="local")
    args = parser.parse_args()
    # the settings under study replace the library's constants for this process only
    vertical_private.FEATURE_SCALE = args.feature_scale
    vertical_private.GRADIENT_CLAMP = args.gradient_clamp
    vertical_private.LR_SCALE = args.lr_scale
    x, y, parties = aligned_features(args.fed)
    print("machine:", json.dumps(describe()), file=sys.stderr)
    for text in args.epsilons.split(","):
        epsilon = None if text == "inf" else float(text)
        scores = [run(x, y, parties, epsilon=epsilon, steps=args.steps, lr=args.lr,
                      distributed=args.noise == "distributed", seed=int(s))
                  for s in args.seeds.split(",")]
        print(json.dumps({"epsilon": text, "noise": args.noise, "steps": args.steps,
                          "lr": args.lr or f"rule, scale {args.lr_scale}",
                          "feature_scale": args.feature_scale,
                          "gradient_clamp": args.gradient_clamp, "train_stays": len(x["train"]),
                          "test_macro_auroc": [round(v, 4) for v in scores],
                          "mean": round(float(np.mean(scores)), 4)}))


if __name__ == "__main__":
    main()
