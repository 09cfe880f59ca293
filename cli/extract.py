"""`crypten-fl extract`: MIMIC-IV CSVs -> an ICU cohort on a fixed time grid."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from crypten_fl.mimic_etl.extract import ExtractSummary



def command(
    out: Annotated[
        Path,
        typer.Option(help="COHORT/ directory to write (must be new or empty).", show_default=False),
    ],
    mimic_dir: Annotated[
        Path | None,
        typer.Option(
            help="MIMIC-IV root holding hosp/ and icu/ (.csv.gz or .csv; v2.2, v3.1, v1.x). "
            "Give this or --meds-dir.",
            show_default=False,
        ),
    ] = None,
    meds_dir: Annotated[
        Path | None,
        typer.Option(
            help="MEDS dataset (data/**/*.parquet, metadata/) instead of --mimic-dir; its codes "
            "are mapped by --meds-mapping. Same cohort contract (anchor_year_group is NULL).",
            show_default=False,
        ),
    ] = None,
    meds_mapping: Annotated[
        Path | None,
        typer.Option(
            help="Folder mapping MEDS codes to the MIMIC-IV tables: codes.csv and one SQL file "
            "per table (copy crypten_fl/sql/meds/ to adapt). Default: the MIMIC-IV -> MEDS "
            "codes (sql/meds/).",
            show_default=False,
        ),
    ] = None,
    hours: Annotated[
        int, typer.Option(help="Observation window from ICU admission, in hours.")
    ] = 48,
    bin_hours: Annotated[
        int, typer.Option(help="Width of one time bin in hours; must divide --hours.")
    ] = 2,
    min_age: Annotated[
        int, typer.Option(help="Minimum age at hospital admission, in years.")
    ] = 18,
    min_los_hours: Annotated[
        float | None,
        typer.Option(
            help="Minimum ICU length of stay in hours. Default: none (stays shorter than "
            "--hours are kept with the full grid).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="DuckDB worker threads. Default: all cores.", show_default=False),
    ] = None,
    memory_limit: Annotated[
        str,
        typer.Option(help="DuckDB memory limit; larger intermediate results spill to disk "
                     "(3GB keeps a full MIMIC-IV run under 4 GB)."),
    ] = "3GB",
    overwrite: opt.Overwrite = False,
) -> None:
    """Extract adult ICU stays from MIMIC-IV (CSV or MEDS) into time-binned features and 12 labels.

    Writes COHORT/{static,timeseries,labels}.parquet, cohort_flow.json and manifest.json.

    Per --bin-hours bin of the first --hours: raw values (outliers removed, never imputed).

    Each feature has an observed mask. Prints the cohort flow and a summary, then both as JSON.
    """
    from crypten_fl.mimic_etl.extract import extract


    def run() -> ExtractSummary:
        with progress_bars() as progress:
            return extract(
                mimic_dir,
                out,
                meds_dir=meds_dir,
                meds_mapping=meds_mapping,
                hours=hours,
                bin_hours=bin_hours,
                min_age=min_age,
                min_los_hours=min_los_hours,
                threads=threads,
                memory_limit=memory_limit,
                overwrite=overwrite,
                progress=progress,
            )

    summary = run_or_exit(run)
    for table in render_tables(summary):
        console.print(table)
    if summary.source.get("subjects_without_icu_stay"):
        console.print(f"{summary.source['subjects_without_icu_stay']:,} MEDS subject(s) without "
                      "an ICU stay (not in the cohort)")
    if summary.source.get("unmapped_codes"):
        console.print(
            f"[yellow]{summary.source['unmapped_codes']:,} MEDS code(s) map to nothing "
            f"({summary.source['unmapped_events']:,} events ignored); most frequent in "
            "manifest.json 'source'[/yellow]"
        )
    point_to_json(summary.out / "cohort_flow.json")
    point_to_json(summary.out / "manifest.json")


def render_tables(summary: ExtractSummary) -> list[Table]:
    """The cohort-flow table, the summary table and the label-prevalence table."""
    flow = make_table(
        f"{escape(str(summary.out))}: cohort flow",
        ["step", "criterion", "remaining", "removed"],
        [[s.step, s.description, s.remaining, s.removed] for s in summary.cohort_flow],
    )
    overview = summary.overview()
    rows: list[list[object]] = [
        ["ICU stays", summary.stays],
        ["patients", summary.patients],
        ["admissions", summary.admissions],
        ["time bins per stay", f"{summary.n_bins} x {summary.bin_hours} h"],
        ["features", overview["features"]],
        *[[f"  {group}", n] for group, n in summary.features_by_group.items()],
        ["seconds", summary.elapsed_seconds],
    ]
    totals = make_table(f"{escape(str(summary.out))}: summary", ["", "value"], rows)
    labels = make_table(
        "label prevalence",
        ["label", "positives", "prevalence"],
        [[lab.name, lab.positives, lab.prevalence] for lab in summary.labels],
    )
    return [flow, totals, labels]
