"""`crypten-fl partition`: split an extracted cohort into simulated hospitals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from crypten_fl.common.errors import UserError
from rich.table import Table

if TYPE_CHECKING:
    from crypten_fl.mimic_etl.partition import PartitionSummary



def command(
    cohort: Annotated[
        Path, typer.Option(help="COHORT/ directory written by `crypten-fl extract`.")
    ],
    out: Annotated[Path, typer.Option(help="FED/ directory to write (must be new or empty).")],
    hospitals: Annotated[
        int | None,
        typer.Option(
            help="Number of simulated hospitals K. Required unless --vertical, where it defaults "
            "to the number of parties in --feature-groups and must equal it if given."
        ),
    ] = None,
    iid: Annotated[
        bool | None,
        typer.Option(
            "--iid/--non-iid",
            help="--iid: uniformly random patients per hospital. --non-iid (the default): use "
            "--scheme.",
            show_default=False,
        ),
    ] = None,
    scheme: Annotated[
        str | None,
        typer.Option(
            help="Non-IID scheme: dirichlet (label skew, Dirichlet(alpha) per label class; the "
            "default), careunit (natural split by first care unit) or quantity (hospital sizes "
            "from Dirichlet(alpha), IID content).",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(help="Dirichlet concentration for dirichlet/quantity; smaller = more skewed."),
    ] = 0.5,
    vertical: Annotated[
        bool,
        typer.Option(
            "--vertical",
            help="Vertical federation: every party holds the same stays (pseudonymous keys) "
            "but a different feature group.",
        ),
    ] = False,
    feature_groups: Annotated[
        str | None,
        typer.Option(
            help="Vertical parties' feature groups, ';' between parties and ',' within one "
            "(groups: the cohort's vitals, labs, meds, urine, plus static). "
            "Default: 'vitals;labs;meds,urine,static'.",
            show_default=False,
        ),
    ] = None,
    label_party: Annotated[
        int | None,
        typer.Option(
            help="Vertical: index of the party holding the labels. Default: 0.", show_default=False
        ),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Train,val,test fractions of each hospital's patients.")
    ] = "0.7,0.1,0.2",
    seed: Annotated[int, typer.Option(help="Random seed of assignment and splits.")] = 0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Split a cohort into K simulated hospitals (IID, label skew, care unit, size skew, vertical).

    Patients, never stays, are assigned: all stays of a patient share one hospital and one split.

    Writes FED/hospital_<k>/{train,val,test}.parquet and manifest.json for each hospital.

    Also writes FED/partition.json and FED/label_prevalence.png, and prints per-hospital counts.
    """
    from crypten_fl.mimic_etl.partition import parse_split, partition


    def run() -> PartitionSummary:
        if vertical and (iid is not None or scheme is not None):
            raise UserError("--iid/--non-iid/--scheme: do not apply to --vertical")
        if iid and scheme is not None:
            raise UserError(f"--scheme {scheme}: conflicts with --iid")
        if not vertical and (feature_groups is not None or label_party is not None):
            raise UserError("--feature-groups/--label-party: only apply with --vertical")
        fractions = parse_split(split)
        with progress_bars() as progress:
            return partition(
                cohort,
                out,
                hospitals,
                scheme=scheme or "dirichlet",
                iid=bool(iid),
                alpha=alpha,
                vertical=vertical,
                feature_groups=feature_groups,
                label_party=label_party or 0,
                split=fractions,
                seed=seed,
                overwrite=overwrite,
                progress=progress,
            )

    summary = run_or_exit(run)
    console.print(_table(summary))
    # paths on lines of their own, never hard-wrapped: they can be copied whole
    console.print(f"federation: {summary.out}", markup=False, soft_wrap=True)
    console.print(f"label prevalence per hospital: {summary.out / 'label_prevalence.png'}",
                  markup=False, soft_wrap=True)
    point_to_json(summary.out / "partition.json")


def _table(summary: PartitionSummary) -> Table:
    """Per-hospital counts; horizontal also the 3 most varying labels' prevalence and JS."""
    if summary.vertical:
        columns = ["party", "groups", "features", "stays", "train", "val", "test"]
        columns += ["labels", "missing"]
        rows = [
            [
                h.hospital,
                ",".join(h.groups or []),
                h.n_features,
                h.stays,
                *h.split_stays.values(),
                "yes" if h.label_party else "no",
                h.missing_stays,
            ]
            for h in summary.hospitals
        ]
        return make_table("vertical federation", columns, rows)
    labels = summary.most_varying_labels(3)
    columns = ["hosp", "stays", "patients", "train", "val", "test"]
    columns += [*(name[:12] for name in labels), "JS div"]
    rows = [
        [
            h.hospital,
            h.stays,
            h.patients,
            *h.split_stays.values(),
            *((h.prevalence or {}).get(n) for n in labels),
            h.js_divergence,
        ]
        for h in summary.hospitals
    ]
    title = f"{summary.scheme} federation, mean JS divergence {summary.mean_js_divergence:.4f}"
    return make_table(title, columns, rows,
                      caption="label columns: prevalence of the labels that vary most")
