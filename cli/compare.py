"""`crypten-fl compare`: several runs side by side (per-disease AUROC, cost, measured leakage,
ε spent)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, run_or_exit


def command(
    runs: Annotated[list[Path], typer.Argument(
        help="Run directories (written by `crypten-fl train`; RUN/eval/metrics.json is used "
             "when the run was evaluated, else RUN/test_metrics.json; RUN/audit/audit.json, "
             "when the run was audited, fills the attack columns).",
    )],
    out: Annotated[Path, typer.Option(help="Directory to create for compare.json/.csv/.md "
                                           "and compare_auroc.png.")],
    overwrite: opt.Overwrite = False,
) -> None:
    """Compare runs: one table and one bar chart of per-disease AUROC, with cost, measured
    membership-inference leakage (`crypten-fl audit`) and ε spent."""
    from crypten_fl.fedtrain.experiments.compare import compare

    result = run_or_exit(lambda: compare(runs, out, overwrite=overwrite))
    # on screen, one row per measure and one column per run, which fits a terminal for a
    # handful of runs (compare.md/.csv hold the same as one row per run)
    rows = result.rows
    mb = [None if r["bytes_per_party_per_round"] is None else r["bytes_per_party_per_round"] / 1e6
          for r in rows]
    measures: list[list[object]] = [
        ["strategy", *(r["strategy"] for r in rows)],
        *([f"AUROC {label}", *(r["auroc"].get(label) for r in rows)]
          for label in result.label_names),
        ["macro AUROC", *(r["macro_auroc"] for r in rows)],
        ["MB / party / round", *mb],
        ["s / round", *(r["seconds_per_round"] for r in rows)],
        ["attack", *(r.get("attack") for r in rows)],
        ["attack AUROC", *(r.get("attack_auroc") for r in rows)],
        ["attack TPR @ 1% FPR", *(r.get("attack_tpr_at_1pct_fpr") for r in rows)],
        ["ε lower bound (measured)", *(r.get("epsilon_lower_bound") for r in rows)],
        ["ε DP-SGD (per stay)", *(r["epsilon_spent"] if r["dp"] else "no DP" for r in rows)],
        ["ε central DP (per hospital)", *(r.get("hospital_epsilon") for r in rows)],
    ]
    console.print(make_table("test AUROC, cost and privacy per run",
                             ["", *(r["name"] for r in rows)], measures))
    console.print(f"comparison written to [bold]{result.out_dir}[/] (compare.md, compare.csv, "
                  "compare_auroc.png)", highlight=False)
    point_to_json(result.out_dir / "compare.json")
