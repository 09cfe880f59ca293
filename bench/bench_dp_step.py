"""Time one training step of the default ICU model with and without DP-SGD (Opacus hooks).

All variants run the same model, batch and Adam optimizer on fixed in-memory batches (no data
loading in the timing); the DP variants are the Opacus-compatible model (DP attention) wrapped in
a GradSampleModule with a DPOptimizer (per-sample clipping + Gaussian noise): ``dp-sgd`` with
Opacus' own noise (``torch.normal`` on torch's generator), ``dp-csprng`` with the noise from the
AES-256-CTR CSPRNG (fedtrain/local_training/secure_opacus.py) that training uses, both on the
plain model (dropout 0.1); ``dp-recipe`` is what `train --dp-epsilon` runs: the recipe's model
(no dropout), automatic clipping, CSPRNG noise. ``plain`` is what `train` runs without DP (dropout
0.1); ``plain-no-dropout`` gives the like-for-like ratio. Batches are
fixed at ``--batch`` (the loaders' sampling is not timed, so all variants see identical batch
sizes). The variants are timed in alternating rounds and the median per round is reported.

Usage: ``.venv/bin/python bench/bench_dp_step.py [--bins 24] [--features 45] [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.static_encoding import n_static_features
from crypten_fl.fedtrain.local_training.dp_recipe import DP_DROPOUT, PLAIN_DROPOUT
from crypten_fl.fedtrain.local_training.secure_opacus import SecurePrivacyEngine
from crypten_fl.fedtrain.models.dp_compat import make_private_compatible
from crypten_fl.fedtrain.sessions.hospital import build_model

from bench.machine import describe

N_STATIC = n_static_features()


def _make_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]
) -> Callable[[], None]:
    loss_fn = nn.BCEWithLogitsLoss()
    x, s, y = batch

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x, s), y).backward()
        optimizer.step()

    return step


def build_steps(args: argparse.Namespace) -> dict[str, Callable[[], None]]:
    """The plain and the DP-SGD training step on the same data."""
    torch.manual_seed(0)
    n = args.batch * 4
    data = (
        torch.randn(n, args.bins, 2 * args.features),
        torch.randn(n, N_STATIC),
        (torch.rand(n, 12) > 0.7).float(),
    )
    batch = tuple(t[: args.batch] for t in data)
    # the model `train` builds (its defaults: stay summaries, linear head), at each dropout
    models = {dropout: build_model(TrainConfig(fed="", dropout=dropout), args.features, N_STATIC,
                                   12, args.bins) for dropout in (PLAIN_DROPOUT, DP_DROPOUT)}
    for model in models.values():
        model.load_state_dict(models[PLAIN_DROPOUT].state_dict())
    plain = models[PLAIN_DROPOUT]
    loader = DataLoader(TensorDataset(*data), batch_size=args.batch)
    steps = {}
    for name, model in (("plain", plain), ("plain-no-dropout", models[DP_DROPOUT]),
                        # the DP-compatible model (unfused DP attention) without DP: what the
                        # model swap alone costs
                        ("plain-dp-model", make_private_compatible(models[DP_DROPOUT]))):
        steps[name] = _make_step(model.train(), torch.optim.Adam(model.parameters(), lr=1e-3),
                                 batch)
    engines = {"dp-sgd": lambda: PrivacyEngine(accountant="rdp"),
               "dp-csprng": lambda: SecurePrivacyEngine(accountant="rdp"),
               # the DP recipe: automatic clipping; from a pretrained start the head only
               "dp-recipe": lambda: SecurePrivacyEngine(accountant="rdp", automatic_clipping=True),
               "dp-recipe-head": lambda: SecurePrivacyEngine(accountant="rdp",
                                                             automatic_clipping=True)}
    for name, engine in engines.items():
        # Opacus' own noise on the plain model; the recipe's variants on the recipe's model
        private = make_private_compatible(models[DP_DROPOUT if "recipe" in name else PLAIN_DROPOUT])
        if name.endswith("-head"):
            for key, parameter in private.named_parameters():
                parameter.requires_grad_(key.startswith("head"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dp_model, dp_opt, _ = engine().make_private(
                module=private,
                optimizer=torch.optim.Adam([p for p in private.parameters() if p.requires_grad],
                                           lr=1e-3),
                data_loader=loader,
                noise_multiplier=1.0,
                max_grad_norm=1.0,
                poisson_sampling=True,  # the loader is not used in the timing
                grad_sample_mode="hooks",
            )
        steps[name] = _make_step(dp_model.train(), dp_opt, batch)
    return steps


def time_steps(steps: dict[str, Callable[[], None]], n_steps: int, rounds: int) -> dict[str, float]:
    """Median over ``rounds`` of the mean ms per step, variants alternating each round."""
    per_round: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(n_steps):
                step()
            per_round[name].append(1000 * (time.perf_counter() - start) / n_steps)
    return {name: statistics.median(values) for name, values in per_round.items()}


def main() -> None:
    """Parse options, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=24, help="time bins per stay (default 24)")
    parser.add_argument("--features", type=int, default=45, help="time-series features (45)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timing round (10)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (5)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        steps = build_steps(args)
        for step in steps.values():  # warm-up
            for _ in range(3):
                step()
        ms = time_steps(steps, args.steps, args.rounds)
    print(f"machine: {json.dumps(describe())}, torch threads={torch.get_num_threads()}")
    print(
        f"model: d_model 64, 2 layers, {args.bins} bins, {args.features} features, "
        f"batch {args.batch}, Adam; median of {args.rounds} rounds × {args.steps} steps"
    )
    for name, value in ms.items():
        print(f"{name:>14}: {value:8.1f} ms/step")
    for name in ("dp-sgd", "dp-csprng", "dp-recipe", "dp-recipe-head"):
        ratio = ms[name] / ms["plain"]
        verdict = "within" if ratio <= 1.5 else "ABOVE"
        print(f"{name:>14}: {ratio:8.2f}x plain  ({verdict} the 1.5x target)")
    print(f"{'dp-recipe':>14}: {ms['dp-recipe'] / ms['plain-no-dropout']:8.2f}x plain without "
          "dropout (like for like)")
    print(f"csprng noise vs torch noise: {ms['dp-csprng'] / ms['dp-sgd']:.3f}x")


if __name__ == "__main__":
    main()
