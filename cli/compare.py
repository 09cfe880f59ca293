"""`crypten-fl compare`: several runs side by side (per-disease AUROC, cost, measured leakage,
ε spent)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, make_table, point_to_json, run_or_exit
from fedtrain.evaluate.compare import compare, comparison_table


def command(
    runs: Annotated[list[Path], typer.Argument(
        help="Run directories (written by `crypten-fl train`; RUN/eval/metrics.json is used "
             "when the run was evaluated, else RUN/test_metrics.json; RUN/audit/audit.json, "
             "when the run was audited, fills the attack columns).",
    )],
    out: Annotated[Path, typer.Option(help="Directory to create for compare.json/.csv/.md "
                                           "and compare_auroc.png.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out directory.")] = False,
) -> None:
    """Compare runs: one table and one bar chart of per-disease AUROC, with cost, measured
    membership-inference leakage (`crypten-fl audit`) and ε spent."""
    result = run_or_exit(lambda: compare(runs, out, overwrite=overwrite))
    table = comparison_table(result.label_names, result.rows)
    console.print(make_table(table.title, table.columns, table.rows))
    console.print(f"comparison written to [bold]{result.out_dir}[/] (compare.md, compare.csv, "
                  "compare_auroc.png)", highlight=False)
    point_to_json(result.out_dir / "compare.json")
