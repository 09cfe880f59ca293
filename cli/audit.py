"""`crypten-fl audit`: measured membership-inference leakage of a run's final model(s)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from crypten_fl.common.errors import UserError
from rich.markup import escape


def _hospitals(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--hospitals {text!r}: give hospital indices like 0,2") from None


def command(
    run: Annotated[Path, typer.Option(help="Run directory written by `crypten-fl train`.")],
    attack: Annotated[str, typer.Option(
        help="'loss': threshold on the stay's loss (Yeom et al. 2018; seconds). 'shadow': "
             "offline LiRA against reference models each hospital trains on its own "
             "non-candidate stays (Carlini et al. 2022; costs --references local trainings).",
    )] = "loss",
    out: Annotated[Path | None, typer.Option(
        help="Directory to create for audit.json/.csv/.md and audit_roc.png (default: RUN/audit).",
    )] = None,
    seed: Annotated[int, typer.Option(
        help="Seed of the member/non-member draw, the reference models and the bootstrap.",
    )] = 0,
    bootstrap: Annotated[int, typer.Option(
        help="Bootstrap resamples for the 95 % percentile intervals (0: no intervals).",
    )] = 1000,
    hospitals: Annotated[str | None, typer.Option(
        help="Comma-separated hospital indices to audit (default: all). The others still take "
             "part in the secure sums, contributing zeros.",
    )] = None,
    references: Annotated[int, typer.Option(
        help="--attack shadow: reference models per hospital (at least 2).",
    )] = 4,
    reference_epochs: Annotated[int | None, typer.Option(
        help="--attack shadow: training epochs of each reference model (default: the run's "
             "rounds × local epochs).",
    )] = None,
    reference_fraction: Annotated[float, typer.Option(
        help="--attack shadow: share of the hospital's reference pool (its stays that are not "
             "candidates) each reference model is trained on, a fresh random subset per model.",
    )] = 0.5,
    delta: Annotated[float | None, typer.Option(
        help="δ of the ε lower bound (default: the run's DP-SGD δ per hospital, else "
             "n_train^-1.1, the DP default).",
    )] = None,
    overwrite: opt.Overwrite = False,
) -> None:
    """Audit a run: membership-inference attack AUROC, TPR at 0.1 % / 1 % FPR and the implied
    ε lower bound, per hospital (each on its own data) and overall (summed histograms)."""
    from crypten_fl.fedtrain.privacy.audit import AuditOptions, AuditResult, audit
    from crypten_fl.fedtrain.privacy.audit_report import NOTES, audit_table


    def go() -> AuditResult:
        options = AuditOptions(run=run, attack=attack, out=out, seed=seed, bootstrap=bootstrap,
                               hospitals=_hospitals(hospitals), references=references,
                               reference_epochs=reference_epochs,
                               reference_fraction=reference_fraction, delta=delta,
                               overwrite=overwrite)
        with progress_bars() as progress:
            return audit(options, progress)

    result = run_or_exit(go)
    table = audit_table(result.report)
    console.print(make_table(table.title, table.columns, table.rows))
    console.print(f"[dim]{escape(NOTES)}[/]", highlight=False)
    console.print(f"audit written to [bold]{result.out_dir}[/] (audit.md, audit.csv, "
                  "audit_roc.png)", highlight=False)
    point_to_json(result.out_dir / "audit.json")
