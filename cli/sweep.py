"""`crypten-fl sweep`: train one strategy at several DP budgets ε and plot utility against ε."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from fedtrain.evaluate.sweep import SweepResult, parse_epsilons, sweep, sweep_table
from fedtrain.run.config import STRATEGIES, TrainConfig


def command(
    fed: Annotated[Path, typer.Option(help="Federation dir written by `crypten-fl partition`.")],
    out: Annotated[Path, typer.Option(help="Directory to create: one run per ε under "
                                           "eps_<ε>/, plus sweep.json/.csv/.md and sweep.png.")],
    strategy: Annotated[str, typer.Option(
        help=f"One of: {', '.join(s for s in STRATEGIES if s not in ('split', 'vertical'))} "
             "(split and vertical have no DP-SGD yet).",
    )] = "horizontal",
    dp_epsilon: Annotated[str, typer.Option(
        help="Comma-separated target ε values per hospital over the whole run; 'inf' = no DP.",
    )] = "0.1,0.5,1,2,5,10,inf",
    rounds: Annotated[int, typer.Option(help="Federated rounds of each run.")] = 20,
    local_epochs: Annotated[int, typer.Option(help="Local epochs per round at each hospital.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    dp_delta: Annotated[float | None, typer.Option(
        help="DP δ (default: 1/(10·n_train) per hospital).")] = None,
    max_grad_norm: Annotated[float, typer.Option(help="DP-SGD per-example clipping norm.")] = 1.0,
    secure: Annotated[bool, typer.Option(
        "--secure/--plain", help="Aggregate with CrypTen secret sharing (default) or a "
                                 "plaintext all-reduce.")] = True,
    seed: Annotated[int, typer.Option(help="Random seed (the same for every ε).")] = 0,
    d_model: Annotated[int, typer.Option(help="Transformer width.")] = 64,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    layers: Annotated[int, typer.Option(help="Transformer encoder layers.")] = 2,
    dropout: Annotated[float, typer.Option(help="Dropout rate.")] = 0.1,
    pooling: Annotated[str, typer.Option(help="'cls' token or 'mean' pooling.")] = "cls",
    personal_layers: Annotated[int, typer.Option(
        help="fedper/fedmtl: head layers kept at each hospital (counted from the output).")] = 1,
    mtl_lambda: Annotated[float, typer.Option(
        help="fedmtl: strength λ of the pull of each head toward the mean of all heads.")] = 0.1,
    timeout: Annotated[float, typer.Option(help="Seconds a hospital waits for a silent peer "
                                                 "before a run stops.")] = 60.0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out directory.")] = False,
) -> None:
    """Privacy–utility sweep: train the strategy at each ε; table and plot of macro-AUROC vs ε."""
    def go() -> SweepResult:
        epsilons = parse_epsilons(dp_epsilon)
        base = TrainConfig(
            fed=str(fed), strategy=strategy, rounds=rounds, local_epochs=local_epochs,
            batch_size=batch_size, lr=lr, dp_delta=dp_delta, max_grad_norm=max_grad_norm,
            secure=secure, seed=seed, d_model=d_model, n_heads=heads, n_layers=layers,
            dropout=dropout, pooling=pooling, personal_layers=personal_layers,
            mtl_lambda=mtl_lambda, timeout=timeout,
        )
        with progress_bars() as progress:
            return sweep(base, epsilons, out, overwrite=overwrite, progress=progress)

    result = run_or_exit(go)
    table = sweep_table(result.rows)
    console.print(make_table(f"{table.title} ({strategy})", table.columns, table.rows))
    console.print(f"sweep written to [bold]{result.out_dir}[/] (sweep.md, sweep.csv, sweep.png)",
                  highlight=False)
    point_to_json(result.out_dir / "sweep.json")
