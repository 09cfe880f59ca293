"""`crypten-fl sweep`: train one strategy at several DP budgets ε and plot utility against ε."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli import options as opt
from cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from cli.train import warn_insecure
from fedtrain import strategies


def command(
    fed: Annotated[Path, typer.Option(help="Federation dir written by `crypten-fl partition`.")],
    out: Annotated[Path, typer.Option(help="Directory to create: one run per ε under "
                                           "eps_<ε>/, plus sweep.json/.csv/.md and sweep.png.")],
    strategy: Annotated[str, typer.Option(
        help=f"One of: {', '.join(strategies.available())}; strategies without DP-SGD are "
             "refused (docs/strategies.md).",
    )] = "horizontal",
    dp_epsilon: Annotated[str, typer.Option(
        help="Comma-separated target ε values per hospital over the whole run; 'inf' = no DP.",
    )] = "0.1,0.5,1,2,5,10,inf",
    rounds: opt.Rounds = 20,
    local_epochs: opt.LocalEpochs = 1,
    batch_size: opt.BatchSize = 128,
    lr: opt.LearningRate = 1e-3,
    dp_delta: opt.DpDelta = None,
    max_grad_norm: opt.MaxGradNorm = 1.0,
    secure: opt.Secure = True,
    seed: Annotated[int, typer.Option(help="Random seed (the same for every ε).")] = 0,
    d_model: opt.DModel = 64,
    heads: opt.Heads = 4,
    layers: opt.Layers = 2,
    dropout: opt.Dropout = 0.1,
    pooling: opt.Pooling = "cls",
    personal_layers: opt.PersonalLayers = 1,
    mtl_lambda: opt.MtlLambda = 0.1,
    timeout: opt.Timeout = 60.0,
    insecure_transport: opt.InsecureTransport = False,
    overwrite: opt.Overwrite = False,
) -> None:
    """Privacy–utility sweep: train the strategy at each ε; table and plot of macro-AUROC vs ε."""
    from fedtrain.evaluate.sweep import SweepResult, parse_epsilons, sweep, sweep_table
    from fedtrain.run.config import TrainConfig

    def go() -> SweepResult:
        epsilons = parse_epsilons(dp_epsilon)
        base = TrainConfig(
            fed=str(fed), strategy=strategy, rounds=rounds, local_epochs=local_epochs,
            batch_size=batch_size, lr=lr, dp_delta=dp_delta, max_grad_norm=max_grad_norm,
            secure=secure, seed=seed, d_model=d_model, n_heads=heads, n_layers=layers,
            dropout=dropout, pooling=pooling, personal_layers=personal_layers,
            mtl_lambda=mtl_lambda, timeout=timeout, insecure_transport=insecure_transport,
        )
        if insecure_transport:
            warn_insecure()
        with progress_bars() as progress:
            return sweep(base, epsilons, out, overwrite=overwrite, progress=progress)

    result = run_or_exit(go)
    table = sweep_table(result.rows)
    console.print(make_table(f"{table.title} ({strategy})", table.columns, table.rows))
    console.print(f"sweep written to [bold]{escape(str(result.out_dir))}[/] (sweep.md, sweep.csv, "
                  "sweep.png)", highlight=False)
    point_to_json(result.out_dir / "sweep.json")
