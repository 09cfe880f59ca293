"""`crypten-fl evaluate`: metrics of a finished run, computed at the hospitals (secure default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from rich.markup import escape


def command(
    run: Annotated[Path, typer.Option(help="Run directory written by `crypten-fl train`.")],
    cross_hospital: Annotated[bool, typer.Option(
        help="Also leave-one-hospital-out: retrain the run's strategy without each hospital in "
             "turn and evaluate it there (unseen) and at the training hospitals (seen). Off by "
             "default; costs one training per hospital.",
    )] = False,
    secure: Annotated[bool, typer.Option(
        "--secure/--plain",
        help="Secure (default): hospitals reveal only securely summed score histograms and "
             "counts. --plain: pool predictions at the coordinator for exact metrics (insecure "
             "reference).",
    )] = True,
    bins: Annotated[int, typer.Option(
        help="Score-histogram bins per label; the secure AUROC is exact for scores binned to "
             "1/bins.",
    )] = 1000,
    threshold: Annotated[str, typer.Option(
        help="Decision threshold per disease, chosen on validation data: 'youden' (max "
             "sensitivity + specificity − 1), 'f1' (max F1) or a fixed number in [0, 1].",
    )] = "youden",
    seed: Annotated[int | None, typer.Option(
        help="Seed of the --cross-hospital retraining (default: the run's own seed).",
    )] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace an existing RUN/eval written by an earlier `crypten-fl evaluate`, once the "
             "new report is complete (never a folder crypten-fl did not write).")] = False,
) -> None:
    """Evaluate a run: per-disease and macro/micro metrics, per hospital, per subgroup; plots."""
    from crypten_fl.fedtrain.evaluate.runner import EvalOptions, EvalResult, evaluate
    from crypten_fl.fedtrain.evaluate.tables import (
        Table,
        cross_hospital_tables,
        hospital_table,
        overall_table,
        subgroup_table,
    )

    options = EvalOptions(run=run, cross_hospital=cross_hospital, secure=secure, bins=bins,
                          threshold=threshold, seed=seed, overwrite=overwrite)

    def go() -> EvalResult:
        with progress_bars() as progress:
            return evaluate(options, progress)

    result = run_or_exit(go)
    report = result.report
    tables: list[Table | None] = [overall_table(report), hospital_table(report),
                                  subgroup_table(report), *cross_hospital_tables(report)]
    for table in tables:
        if table is not None:
            console.print(make_table(table.title, table.columns, table.rows))
    if report.get("subgroups_note"):
        console.print(f"subgroups: {report['subgroups_note']}")
    console.print(f"report written to [bold]{escape(str(result.out_dir))}[/] (tables.md, "
                  f"metrics.csv, {', '.join(result.figures)})", highlight=False)
    point_to_json(result.out_dir / "metrics.json")
