"""`crypten-fl train`: federated training across hospital processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, end_live_display, make_table, run_or_exit
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.run.privacy_json import record_level_epsilons
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from crypten_fl.fedtrain.run.coordinator import TrainSummary



LABEL_METRICS = ("auroc", "accuracy", "precision", "recall", "f1", "specificity", "mse")


class RoundDisplay:
    """Live table of rounds: loss and validation macro-AUROC per hospital."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.rows: dict[int, dict[str, dict[str, Any]]] = {}
        self.status = "starting hospital processes"
        self.live: Live | None = None

    def __call__(self, rank: int, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "round":
            self.rows.setdefault(int(event["round"]), {})[str(event["hospital"])] = event
            self.status = f"round {event['round']}/{self.rounds}"
        elif kind == "dropped":
            self.status = f"{event['reason'].split(' (')[0]} — the others go on"
        elif kind == "restarted":
            self.status = f"hospital {rank} restarted: it rejoins at the next round"
        elif kind == "status":
            self.status = f"hospital {event.get('hospital', rank)}: {event['message']}"
        elif kind == "refused" and self.live is not None:
            self.live.console.print(refusal_line(event), highlight=False)
        elif kind == "update_rejected":
            self.status = (f"hospital {event['hospital']}: update of round {event['round']} "
                           f"rejected ({event['reason']})")
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Table:
        names = {h for row in self.rows.values() for h in row}
        hospitals = sorted(names, key=lambda h: (not h.isdigit(), int(h) if h.isdigit() else 0, h))
        table = Table(title=f"training — {self.status}", title_justify="left")
        table.add_column("round", justify="right")
        for h in hospitals:
            name = f"h{h}" if h.isdigit() else h
            table.add_column(f"{name} loss", justify="right")
            table.add_column(f"{name} val AUROC", justify="right")
        for r in sorted(self.rows)[-12:]:
            cells = [str(r)]
            for h in hospitals:
                e = self.rows[r].get(h)
                cells += [_num(e, "train_loss", 4), _num(e, "val_macro_auroc", 3)]
            table.add_row(*cells)
        return table


def _num(event: dict[str, Any] | None, key: str, digits: int) -> str:
    value = event.get(key) if event else None
    return "" if value is None else f"{value:.{digits}f}"


def command(
    fed: Annotated[Path, typer.Option(help="Federation dir written by `crypten-fl partition`.")],
    out: Annotated[Path, typer.Option(help="Run directory to create (config, metrics, models).")],
    strategy: Annotated[str, typer.Option(
        help=f"One of: {', '.join(strategies.available())} (docs/strategies.md).",
    )] = "horizontal",
    rounds: opt.Rounds = opt.DEFAULT.rounds,
    local_epochs: opt.LocalEpochs = opt.DEFAULT.local_epochs,
    batch_size: opt.BatchSize = opt.DEFAULT.batch_size,
    lr: opt.LearningRate = opt.DEFAULT.lr,
    dp_epsilon: Annotated[float | None, typer.Option(
        help="Turn on record-level DP with this ε per hospital over the whole run: DP-SGD "
             "(Opacus), or split's and vertical's own mechanisms (docs/privacy.md); at least 0.05. "
             "Off by default."
    )] = None,
    dp_delta: opt.DpDelta = opt.DEFAULT.dp_delta,
    max_grad_norm: opt.MaxGradNorm = opt.DEFAULT.max_grad_norm,
    dp_batch_size: opt.DpBatchSize = opt.DEFAULT.dp_batch_size,
    dp_lr: opt.DpLr = opt.DEFAULT.dp_lr,
    dp_clipping: opt.DpClipping = opt.DEFAULT.dp_clipping,
    dp_trainable: opt.DpTrainable = opt.DEFAULT.dp_trainable,
    dp_noise: opt.DpNoise = opt.DEFAULT.dp_noise,
    central_dp: opt.CentralDp = opt.DEFAULT.central_dp,
    clip: opt.Clip = opt.DEFAULT.central_clip,
    noise_multiplier: opt.NoiseMultiplier = opt.DEFAULT.central_noise_multiplier,
    central_epsilon: opt.CentralEpsilon = opt.DEFAULT.central_epsilon,
    central_delta: opt.CentralDelta = opt.DEFAULT.central_delta,
    max_update_norm: opt.MaxUpdateNorm = opt.DEFAULT.max_update_norm,
    secure: opt.Secure = opt.DEFAULT.secure,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same run).")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last "
                                               "completed round.")] = False,
    overwrite: opt.Overwrite = False,
    d_model: opt.DModel = opt.DEFAULT.d_model,
    heads: opt.Heads = opt.DEFAULT.n_heads,
    layers: opt.Layers = opt.DEFAULT.n_layers,
    dropout: opt.Dropout = opt.DEFAULT.dropout,
    pooling: opt.Pooling = opt.DEFAULT.pooling,
    stay_summary: opt.StaySummary = opt.DEFAULT.stay_summary,
    head_hidden: opt.HeadHidden = None,
    personal_layers: opt.PersonalLayers = opt.DEFAULT.personal_layers,
    mtl_lambda: opt.MtlLambda = opt.DEFAULT.mtl_lambda,
    cut: opt.Cut = opt.DEFAULT.cut,
    encrypted_lr: opt.EncryptedLr = opt.DEFAULT.encrypted_lr,
    server_opt: opt.ServerOpt = opt.DEFAULT.server_opt,
    server_lr: opt.ServerLr = opt.DEFAULT.server_lr,
    server_momentum: opt.ServerMomentum = opt.DEFAULT.server_momentum,
    server_beta2: opt.ServerBeta2 = opt.DEFAULT.server_beta2,
    server_tau: opt.ServerTau = opt.DEFAULT.server_tau,
    prox_mu: opt.ProxMu = opt.DEFAULT.prox_mu,
    mask_degree: Annotated[int | None, typer.Option(
        help="Secure aggregation mask graph: each hospital masks with this many neighbours "
             "(even number; its update stays hidden unless all of them collude). Default: every "
             "other hospital. Smaller is faster with many hospitals (docs/threat-model.md).",
    )] = None,
    min_hospitals: Annotated[int | None, typer.Option(
        help="Keep training if hospitals drop out, as long as at least this many remain (>= 3; "
             "strategies that tolerate dropouts, docs/strategies.md): the others re-form the "
             "secure group and finish the round. Default: every hospital is required and a "
             "dropout stops the run (continue it with --resume). See docs/reliability.md.",
    )] = None,
    restart_dropped: Annotated[bool, typer.Option(
        help="With --min-hospitals: restart a hospital that dropped out (once), as its operator "
             "would restart its node; it rejoins at the next round. Off by default.",
    )] = False,
    timeout: opt.Timeout = opt.DEFAULT.timeout,
    insecure_transport: opt.InsecureTransport = opt.DEFAULT.insecure_transport,
    init_from: opt.InitFrom = None,
) -> None:
    """Train the multi-label ICU Transformer across hospitals, one process per hospital."""
    options = dict(locals())  # every option above, by name (opt.training_config maps them)
    from crypten_fl.fedtrain.run.coordinator import interrupted_message, train

    config = opt.training_config(options)
    if insecure_transport:
        warn_insecure()
    display = RoundDisplay(rounds)

    def run_live() -> TrainSummary:
        # the live table closes before run_or_exit prints an error line
        try:
            with Live(display.render(), console=console, refresh_per_second=4) as live:
                display.live = live
                return train(config, out, resume=resume, overwrite=overwrite,
                             on_event=display, restart_dropped=restart_dropped)
        finally:
            end_live_display()

    summary = run_or_exit(run_live, lambda: interrupted_message(out))
    render_test_metrics(summary.test_metrics)
    render_update_checks(summary)
    render_dp_sgd(summary.privacy, config.strategy)
    console.print(f"run written to [bold]{summary.run_dir}[/] "
                  f"(test_metrics.json, comm.json, privacy.json)")


def refusal_line(event: dict[str, Any]) -> str:
    """One line for a peer refused at the handshake (an impostor, a wrong or expired kit)."""
    return f"[yellow]refused[/] a connection from {event['peer']}: {event['reason']}"


def warn_insecure() -> None:
    """The warning --insecure-transport prints (what it exposes)."""
    from crypten_fl.fedtrain.transport.exposure import INSECURE_WARNING

    console.print(f"[bold red]warning:[/] {INSECURE_WARNING}", highlight=False)


def render_update_checks(summary: TrainSummary) -> None:
    """Hospital-level ε (--central-dp) and the updates rejected before sharing, if any."""
    central = summary.privacy.get("central_dp")
    if central:
        z, worst = central["noise_multiplier"], central["epsilon_all_others_collude"]
        console.print(f"hospital-level DP: ε = {central['epsilon']:.2f} (δ = {central['delta']:g},"
                      f" noise multiplier {z:.3g}, clip {central['clip']:g}); ε = {worst:.2f} if "
                      "all other hospitals collude (privacy.json)", highlight=False)
    checks = summary.run_dir / "validation.json"
    rejected = json.loads(checks.read_text())["hospitals"] if checks.is_file() else {}
    rows = [[h, r["round"], r["reason"], r["norm"]]
            for h, report in rejected.items() if report for r in report["rejections"]]
    if rows:
        console.print(make_table("updates rejected before sharing (the round went on without them)",
                                 ["hospital", "round", "reason", "norm"], rows))


def render_dp_sgd(privacy: dict[str, Any], strategy: str) -> None:
    """Record-level DP (--dp-epsilon): the ε each hospital spent, and from a random start a
    pointer to public pretraining (what closed most of the gap to the non-private model; for
    vertical, the public feature map); the strategy's own note on DP, if it has one."""
    reports = [r for r in (privacy.get("hospitals") or {}).values() if r and "epsilon" in r]
    spent = sorted(record_level_epsilons(privacy))
    if not spent:
        return
    span = f"{spent[0]:.2f}" if spent[-1] - spent[0] < 0.005 else f"{spent[0]:.2f}–{spent[-1]:.2f}"
    accountants = "/".join(sorted({str(r.get("accountant", "")) for r in reports} - {""}))
    delta = max(float(r["delta"]) for r in reports)
    console.print(f"record-level DP: ε = {span} per hospital (δ ≤ {delta:.2g}, {accountants} "
                  "accountant; privacy.json)", highlight=False)
    chosen = strategies.get(strategy)
    if chosen.dp_note:
        console.print(f"[dim]note: {chosen.dp_note}[/]", highlight=False)
    if not privacy.get("pretraining"):
        console.print("[dim]tip: a start pretrained on public data (`crypten-fl pretrain`, then "
                      "`train --init-from MODEL`) loses much less to the noise than a random "
                      "start; measured figures in docs/privacy.md, \"Public pretraining\"[/]",
                      highlight=False)


def render_test_metrics(metrics: dict[str, Any]) -> None:
    """Per-disease test table (pooled over hospitals) and per-hospital macro averages."""
    overall = metrics["overall"]
    rows = [[label, *(vals[m] for m in LABEL_METRICS)] for label, vals in overall["labels"].items()]
    rows.append(["macro", *(overall["macro"][m] for m in LABEL_METRICS)])
    console.print(make_table(f"test metrics, all hospitals ({overall.get('method', '')})",
                             ["disease", *LABEL_METRICS], rows))
    per = [[h, v["n"], *(v["macro"][m] for m in LABEL_METRICS)]
           for h, v in metrics["per_hospital"].items()]
    console.print(make_table("macro averages per hospital (each on its own test split)",
                             ["hospital", "stays", *LABEL_METRICS], per))
