"""`crypten-fl synth`: write a synthetic MIMIC-IV release with a calibrated clinical signal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from crypten_fl.mimic_etl.synth import SynthSummary



def command(
    out: Annotated[
        Path,
        typer.Option(help="MIMIC_DIR to write: hosp/ and icu/ .csv.gz in the PhysioNet layout "
                     "(must be new or empty unless --overwrite).", show_default=False),
    ],
    patients: Annotated[
        int,
        typer.Option(help="Patients with at least one ICU stay (about 1.25 stays each; 7500 is "
                     "about 10 % of MIMIC-IV v3.1). About 25 % more patients without an ICU "
                     "stay are added.", show_default=False),
    ],
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed and options give identical files.")
    ] = 0,
    version: Annotated[
        str, typer.Option("--version", help="MIMIC-IV release to imitate: 2.2 or 3.1.")
    ] = "3.1",
    format: Annotated[
        str, typer.Option("--format", help="Output format: csv (the PhysioNet hosp/ and icu/ "
                          "layout) or meds (the same patients as a MEDS dataset: "
                          "data/*/0.parquet and metadata/, codes of the MIMIC-IV -> MEDS ETL).")
    ] = "csv",
    overwrite: opt.Overwrite = False,
) -> None:
    """Generate a synthetic MIMIC-IV release: same tables, columns and quirks as the real one.

    12 diagnosis labels with realistic prevalence, correlations and care-unit case-mix.

    Vitals, labs, urine output and prescriptions carry the labels' signal over time.

    Prints rows per table, then the same summary as JSON (saved as OUT/synth_summary.json).
    """
    from crypten_fl.mimic_etl.synth import SUMMARY_FILE, generate


    def run() -> SynthSummary:
        with progress_bars() as progress:
            return generate(out, patients, seed=seed, version=version, overwrite=overwrite,
                            progress=progress, format=format)

    summary = run_or_exit(run)
    console.print(render_table(summary))
    console.print(
        f"{summary.icu_stays:,} ICU stays of {summary.icu_patients:,} ICU patients "
        f"({summary.patients:,} patients, {summary.admissions:,} admissions) in "
        f"{summary.elapsed_seconds:.1f} s, {summary.rows_per_second:,.0f} rows/s"
    )
    point_to_json(summary.out / SUMMARY_FILE)


def render_table(summary: SynthSummary) -> Table:
    """Rows and compressed size per table (or MEDS file), in release order."""
    from crypten_fl.mimic_etl.synth.schema import TABLES

    names = {t: f"{TABLES[t][0]}/{t}.csv.gz" for t in TABLES} if summary.format == "csv" else {}
    rows: list[list[object]] = [
        [names.get(name, name), n, round(summary.bytes[name] / 2**20, 2)]
        for name, n in summary.rows.items()
    ]
    rows.append(["total", summary.total_rows, round(sum(summary.bytes.values()) / 2**20, 2)])
    return make_table(f"{escape(str(summary.out))}: synthetic MIMIC-IV v{summary.version}"
                      + (" (MEDS)" if summary.format == "meds" else ""),
                      ["table", "rows", "MiB"], rows)
