"""`crypten-fl prepare`: one site's own cohort -> its hospital directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from rich.markup import escape

if TYPE_CHECKING:
    from crypten_fl.mimic_etl.partition import PreparedSite


def command(
    cohort: Annotated[Path, typer.Option(
        help="COHORT/ directory that `crypten-fl extract` wrote from this site's own data.")],
    out: Annotated[Path, typer.Option(
        help="Hospital directory to write, e.g. FED/hospital_2 (must be new or empty; its "
             "parent must exist).")],
    hospital: Annotated[int | None, typer.Option(
        help="This site's hospital index k in the federation (its kit's hospital_k). "
             "Default: k from an --out named hospital_<k>, else 0.",
        show_default=False)] = None,
    split: Annotated[str, typer.Option(
        help="Train,val,test fractions of this site's patients.")] = "0.7,0.1,0.2",
    seed: Annotated[int, typer.Option(help="Random seed of the patient split.")] = 0,
    overwrite: opt.Overwrite = False,
) -> None:
    """Write this site's hospital directory from its own cohort (no other site's data).

    Splits the cohort by patient: all stays of a patient share one split.

    Writes OUT/{train,val,test}.parquet and OUT/manifest.json exactly as `partition` does.

    The manifest holds the schema fingerprint the hospitals compare before the first round.

    `crypten-fl node --data OUT` trains on it (docs/your-hospital.md).
    """
    from crypten_fl.mimic_etl.partition import parse_split, prepare

    def run() -> PreparedSite:
        fractions = parse_split(split)
        with progress_bars() as progress:
            return prepare(cohort, out, hospital, split=fractions, seed=seed,
                           overwrite=overwrite, progress=progress)

    site = run_or_exit(run)
    h = site.hospital
    rows = [[h.hospital, h.stays, h.patients, *h.split_stays.values(), h.n_features]]
    columns = ["hospital", "stays", "patients", "train", "val", "test", "features"]
    console.print(make_table(f"{escape(str(site.out))}: hospital {h.hospital}, seed {site.seed}",
                             columns, rows))
    console.print("schema fingerprint (compare with the other sites before training): "
                  f"{site.schema_sha256}", markup=False, highlight=False, soft_wrap=True)
    point_to_json(site.out / "manifest.json")
