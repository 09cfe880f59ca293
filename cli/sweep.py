"""`crypten-fl sweep`: train one strategy at several DP budgets ε and plot utility against ε."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from crypten_fl.cli.train import warn_insecure
from crypten_fl.fedtrain import strategies
from rich.markup import escape


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
    rounds: opt.Rounds = opt.DEFAULT.rounds,
    local_epochs: opt.LocalEpochs = opt.DEFAULT.local_epochs,
    batch_size: opt.BatchSize = opt.DEFAULT.batch_size,
    lr: opt.LearningRate = opt.DEFAULT.lr,
    dp_delta: opt.DpDelta = opt.DEFAULT.dp_delta,
    max_grad_norm: opt.MaxGradNorm = opt.DEFAULT.max_grad_norm,
    dp_batch_size: opt.DpBatchSize = opt.DEFAULT.dp_batch_size,
    dp_lr: opt.DpLr = opt.DEFAULT.dp_lr,
    dp_clipping: opt.DpClipping = opt.DEFAULT.dp_clipping,
    dp_trainable: opt.DpTrainable = opt.DEFAULT.dp_trainable,
    dp_noise: opt.DpNoise = opt.DEFAULT.dp_noise,
    secure: opt.Secure = opt.DEFAULT.secure,
    seed: Annotated[int, typer.Option(help="Random seed (the same for every ε).")] = 0,
    d_model: opt.DModel = opt.DEFAULT.d_model,
    heads: opt.Heads = opt.DEFAULT.n_heads,
    layers: opt.Layers = opt.DEFAULT.n_layers,
    dropout: opt.Dropout = opt.DEFAULT.dropout,
    pooling: opt.Pooling = opt.DEFAULT.pooling,
    stay_summary: opt.StaySummary = opt.DEFAULT.stay_summary,
    head_hidden: opt.HeadHidden = None,
    personal_layers: opt.PersonalLayers = opt.DEFAULT.personal_layers,
    mtl_lambda: opt.MtlLambda = opt.DEFAULT.mtl_lambda,
    server_opt: opt.ServerOpt = opt.DEFAULT.server_opt,
    server_lr: opt.ServerLr = opt.DEFAULT.server_lr,
    server_momentum: opt.ServerMomentum = opt.DEFAULT.server_momentum,
    server_beta2: opt.ServerBeta2 = opt.DEFAULT.server_beta2,
    server_tau: opt.ServerTau = opt.DEFAULT.server_tau,
    prox_mu: opt.ProxMu = opt.DEFAULT.prox_mu,
    timeout: opt.Timeout = opt.DEFAULT.timeout,
    insecure_transport: opt.InsecureTransport = opt.DEFAULT.insecure_transport,
    overwrite: opt.Overwrite = False,
    init_from: opt.InitFrom = None,
    audit: Annotated[bool, typer.Option(
        "--audit/--no-audit",
        help="Also attack every run with `crypten-fl audit`'s loss attack (membership "
             "inference, RUN/audit/): the table and sweep.png show the attack AUROC beside the "
             "utility; DP should keep it at chance (0.5). Not for vertical (no party holds the "
             "model).")] = False,
) -> None:
    """Privacy–utility sweep: train the strategy at each ε; table and plot of macro-AUROC vs ε."""
    options = dict(locals())  # every option above, by name (opt.training_config maps them)
    from crypten_fl.fedtrain.experiments.sweep import (
        SweepResult,
        parse_epsilons,
        sweep,
        sweep_table,
    )

    def go() -> SweepResult:
        epsilons = parse_epsilons(dp_epsilon)
        base = opt.training_config({**options, "dp_epsilon": None})
        if insecure_transport:
            warn_insecure()
        with progress_bars() as progress:
            return sweep(base, epsilons, out, overwrite=overwrite, audit_runs=audit,
                         progress=progress)

    result = run_or_exit(go)
    table = sweep_table(result.rows)
    console.print(make_table(f"{table.title} ({strategy})", table.columns, table.rows))
    console.print(f"sweep written to [bold]{escape(str(result.out_dir))}[/] (sweep.md, sweep.csv, "
                  "sweep.png)", highlight=False)
    point_to_json(result.out_dir / "sweep.json")
