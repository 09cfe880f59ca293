"""How DP-SGD's settings change what FedAvg learns: the experiments behind the DP recipe.

    .venv/bin/python bench/dp_recipe.py --fed FED [--epsilon 3] [--batch 128] [--lr 0.01] \
        [--clipping automatic|flat] [--clip 1] [--gamma 0.01] [--rounds 20] [--local-epochs 2] \
        [--head-only] [--public PUBLIC_FED] [--lr-schedule cosine] [--pooling mean] \
        [--beta1 0.97] [--adam-bc 0.1] [--no-stay-summary] [--head-hidden 64] [--seed 5]

A fast in-process simulation of horizontal FedAvg over FED's hospitals with the library's own
trainer and DP engine (fedtrain/local_training): the same computation as `crypten-fl train
--plain` (size-weighted mean of the hospitals' models after each round, every hospital its own
DP-SGD with its own accountant) without the party processes, so that many settings can be
compared on public synthetic data. ``--public`` first trains the model centrally on another
federation's training stays (public pretraining). Prints one JSON line: macro-AUROC on the
pooled test stays every 5 rounds, σ and ε spent. docs/privacy.md ("DP-SGD: the recipe") quotes
the figures; `crypten-fl train` and bench/dp_utility.py give the real runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crypten_fl.fedtrain.config import TrainConfig as RunConfig
from crypten_fl.fedtrain.data.preprocess import ModelInputs, Normalizer, local_moments
from crypten_fl.fedtrain.local_training import dp_recipe
from crypten_fl.fedtrain.local_training.dp_sgd import DPConfig
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer, TrainConfig
from crypten_fl.fedtrain.sessions.hospital import build_model
from crypten_fl.mimic_etl.hospital_data import load_split

from bench.machine import describe


def _splits(fed: Path, split: str) -> list[Any]:
    return [load_split(d, split) for d in sorted(fed.glob("hospital_*"))]


def _macro_auroc(model_trainer: LocalTrainer, tests: list[ModelInputs]) -> float:
    probs = np.concatenate([model_trainer.predict(t) for t in tests])
    labels = np.concatenate([t.labels.numpy() for t in tests])
    return float(np.mean([roc_auc_score(labels[:, j], probs[:, j])
                          for j in range(labels.shape[1]) if 0 < labels[:, j].sum() < len(labels)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fed", type=Path, required=True)
    parser.add_argument("--epsilon", type=float, default=None, help="default: no DP")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam's rate (default: the DP recipe's for the run's steps, "
                        "dp_recipe.recipe_lr)")
    parser.add_argument("--clipping", choices=("automatic", "flat"), default="automatic")
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=None,
                        help="γ of automatic clipping, g·C/(‖g‖ + γ) (default: the library's)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--head-only", action="store_true", help="train the head only")
    parser.add_argument("--public", type=Path, default=None,
                        help="a federation of public data to pretrain on (its training stays)")
    parser.add_argument("--public-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--distributed", action="store_true",
                        help="simulate --dp-noise distributed: DP-SGD on the hospitals' pooled "
                        "training stays (--batch is the federation's), noise multiplier × "
                        "√(K/(K−1)); without --epsilon: plain training on the pooled stays")
    for option, field in (("--d-model", "d_model"), ("--layers", "n_layers"),
                          ("--heads", "n_heads"), ("--ff", "dim_feedforward"),
                          ("--head-hidden", "head_hidden")):
        parser.add_argument(option, dest=field, type=int, default=getattr(RunConfig, field),
                            help="model size (default %(default)s)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine", "linear"),
                        default="constant",
                        help="learning rate over the run's epochs: constant, cosine or linear "
                        "decay to --lr-floor × --lr (public, no privacy cost)")
    parser.add_argument("--lr-floor", type=float, default=0.0)
    parser.add_argument("--pooling", choices=("cls", "mean"), default=RunConfig.pooling)
    parser.add_argument("--stay-summary", action=argparse.BooleanOptionalAction,
                        default=RunConfig.stay_summary,
                        help="the head also reads the stay summaries (default %(default)s; "
                        "--no-stay-summary --head-hidden 64: the model before 2026-12-06)")
    parser.add_argument("--ema", type=float, default=None,
                        help="evaluate the exponential moving average of the global models "
                        "(decay per round; post-processing, no privacy cost)")
    parser.add_argument("--beta1", type=float, default=None, help="Adam's β1 (default 0.9)")
    parser.add_argument("--adam-bc", type=float, default=None,
                        help="DP-AdamBC (Tang et al., AAAI 2024): subtract the noise's known "
                        "variance Φ = (σC/B)² from Adam's second moment, floored at this × Φ")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout of the model (default: the DP recipe's with --epsilon, "
                        "else the plain one)")
    parser.add_argument("--bias-init", type=Path, default=None,
                        help="start the output bias at the log-odds of each label's prevalence "
                        "in this federation's training stays (the federation itself: an upper "
                        "bound on what a public or DP estimate could give)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    if args.gamma is not None:
        from crypten_fl.fedtrain.local_training import secure_opacus
        secure_opacus.AUTOMATIC_CLIPPING_STABILITY = args.gamma
    print("machine:", json.dumps(describe()), file=sys.stderr)
    train = _splits(args.fed, "train")
    normalizer = Normalizer.from_moments(sum(local_moments(s.values, s.mask, s.static)
                                             for s in train))

    def inputs(split: Any) -> ModelInputs:
        return normalizer.model_inputs(split.values, split.mask, split.static, split.labels)

    trains, tests = [inputs(s) for s in train], [inputs(s) for s in _splits(args.fed, "test")]
    sizes = {f: getattr(args, f) for f in ("d_model", "n_layers", "n_heads", "dim_feedforward",
                                           "head_hidden", "dropout", "pooling", "stay_summary")}
    run = RunConfig(fed="", seed=args.seed, dp_epsilon=args.epsilon, **sizes)
    model = build_model(run, len(train[0].feature_names), trains[0].static.shape[1],
                        train[0].labels.shape[1], train[0].values.shape[1])
    if args.bias_init is not None:
        labels = torch.cat([torch.as_tensor(s.labels, dtype=torch.float64)
                            for s in _splits(args.bias_init, "train")])
        prevalence = labels.mean(0).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            model.head[-1].bias.copy_(torch.log(prevalence / (1 - prevalence)))
    if args.public is not None:
        public = [inputs(s) for s in _splits(args.public, "train")]
        pooled = SimpleNamespace(**{f: torch.cat([getattr(p, f) for p in public])
                                    for f in ("x", "static", "labels")})
        pretrainer = LocalTrainer(model, pooled, TrainConfig(lr=2e-3, batch_size=128, seed=99,
                                                              num_threads=1))
        pretrainer.train_epochs(args.public_epochs)
        model.load_state_dict(pretrainer.model.state_dict())
    dp = (DPConfig(args.epsilon, args.rounds * args.local_epochs, max_grad_norm=args.clip,
                   clipping=args.clipping) if args.epsilon is not None else None)
    if args.distributed:
        _print(args, model, _pooled_run(args, model, trains, tests, dp))
        return
    trainers = [LocalTrainer(model, t, TrainConfig(
        lr=_lr(args, len(t)), batch_size=args.batch, seed=args.seed * 1000 + i, num_threads=1,
        trainable=("head",) if args.head_only else None), dp) for i, t in enumerate(trains)]
    for trainer in trainers:
        _adam_variant(args, trainer)
    weights = np.array([len(t) for t in trains], float) / sum(len(t) for t in trains)
    began, curve = time.perf_counter(), []
    ema: dict[str, torch.Tensor] | None = None
    for r in range(args.rounds):
        states = []
        for trainer in trainers:
            for _ in range(args.local_epochs):
                _schedule(args, trainer)
                trainer.train_epochs(1)
            states.append(trainer.shared_state(0))
        mean = {k: sum(w * s[k] for w, s in zip(weights, states, strict=True)) for k in states[0]}
        ema = mean if ema is None or args.ema is None else {
            k: args.ema * ema[k] + (1 - args.ema) * v for k, v in mean.items()}
        if (r + 1) % 5 == 0 or r + 1 == args.rounds:
            trainers[0].load_shared_state(ema)
            curve.append(round(_macro_auroc(trainers[0], tests), 4))
        for trainer in trainers:
            trainer.load_shared_state(mean)
    _print(args, model, (curve, trainers[0].privacy_report() or {},
                         time.perf_counter() - began))


def _pooled_run(args: argparse.Namespace, model: Any, trains: list[ModelInputs],
                tests: list[ModelInputs], dp: DPConfig | None
                ) -> tuple[list[float], dict[str, Any], float]:
    """One trainer on the pooled training stays: the computation of distributed noise (every
    step one DP-SGD step of the federation) with σ scaled by √(K/(K−1)), the sum of K shares."""
    pooled = ModelInputs(*(torch.cat([getattr(t, f) for t in trains]) for f in ("x", "static",
                                                                               "labels")))
    trainer = LocalTrainer(model, pooled, TrainConfig(lr=_lr(args, len(pooled)),
                                                       batch_size=args.batch,
                                                       seed=args.seed, num_threads=1), dp)
    if dp is not None:
        k = len(trains)
        trainer._private.optimizer.noise_multiplier *= math.sqrt(k / (k - 1))  # type: ignore[union-attr]
    _adam_variant(args, trainer)
    began, curve = time.perf_counter(), []
    for epoch in range(args.rounds * args.local_epochs):
        _schedule(args, trainer)
        trainer.train_epochs(1)
        if (epoch + 1) % (5 * args.local_epochs) == 0:
            curve.append(round(_macro_auroc(trainer, tests), 4))
    return curve, trainer.privacy_report() or {}, time.perf_counter() - began


class AdamBC(torch.optim.Adam):
    """Adam whose second moment has the DP noise's variance ``phi`` subtracted (DP-AdamBC)."""

    phi: float = 0.0
    floor: float = 1.0

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        """Adam's update with m̂ / (√max(v̂ − Φ, floor·Φ) + eps)."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = state["exp_avg"] / (1 - beta1 ** t)
                v_hat = state["exp_avg_sq"] / (1 - beta2 ** t)
                denom = (v_hat - self.phi).clamp(min=self.floor * self.phi).sqrt() + group["eps"]
                p.addcdiv_(m_hat, denom, value=-group["lr"])


def _adam_variant(args: argparse.Namespace, trainer: LocalTrainer) -> None:
    """Apply ``--beta1`` to the trainer's Adam, and with ``--adam-bc`` make it a DP-AdamBC for its
    noise."""
    if args.beta1 is not None:
        for group in trainer.optimizer.param_groups:
            group["betas"] = (args.beta1, group["betas"][1])
    if args.adam_bc is None or trainer._private is None:
        return
    dp_opt = trainer._private.optimizer
    adam = dp_opt.original_optimizer
    adam.__class__ = AdamBC
    adam.phi = (float(dp_opt.noise_multiplier) * float(dp_opt.max_grad_norm)
                / float(dp_opt.expected_batch_size)) ** 2
    adam.floor = args.adam_bc


def _lr(args: argparse.Namespace, n_train: int) -> float:
    """``--lr``, else the recipe's rate for ``n_train`` records at ``--batch`` for the run."""
    if args.lr is not None:
        return float(args.lr)
    return dp_recipe.choose(n_train, epochs=args.rounds * args.local_epochs,
                            batch_size=args.batch).lr


def _schedule(args: argparse.Namespace, trainer: LocalTrainer) -> None:
    """Set the trainer's learning rate for its next epoch from ``--lr-schedule``."""
    done = trainer.epochs_done / (args.rounds * args.local_epochs)
    decay = {"constant": 1.0, "cosine": 0.5 * (1 + math.cos(math.pi * done)),
             "linear": 1.0 - done}[args.lr_schedule]
    for group in trainer.optimizer.param_groups:
        group["lr"] = trainer.config.lr * (args.lr_floor + (1 - args.lr_floor) * decay)


def _print(args: argparse.Namespace, model: Any,
           result: tuple[list[float], dict[str, Any], float]) -> None:
    curve, report, seconds = result
    print(json.dumps({**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "macro_auroc_every_5_rounds": curve, "macro_auroc": curve[-1],
                      "lr_used": report.get("lr"),
                      "noise_multiplier": report.get("noise_multiplier"),
                      "epsilon_spent": report.get("epsilon"),
                      "seconds": round(seconds)}))


if __name__ == "__main__":
    main()
