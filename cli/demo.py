"""`make demo`: the whole pipeline on synthetic data, exactly as a user would type it.

    python -m cli.demo --workdir demo-output --patients 3000 --seed 7
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time
from pathlib import Path

from rich.rule import Rule

from cli.app import app
from cli.common import console


def _run(args: list[str]) -> None:
    console.print(Rule(f"[bold]$ crypten-fl {shlex.join(args)}"))
    began = time.perf_counter()
    try:
        app(args, standalone_mode=False)
    except SystemExit as err:  # typer.Exit inside standalone_mode=False
        if err.code:
            raise
    console.print(f"[dim]({time.perf_counter() - began:.1f} s)[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"))
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--hospitals", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)  # the demo's own output directory, re-created on every run
    work.mkdir(parents=True)
    mimic, cohort, fed, run = work / "mimic-iv", work / "cohort", work / "fed", work / "run"
    began = time.perf_counter()
    _run(["synth", "--out", str(mimic), "--patients", str(args.patients), "--seed",
          str(args.seed)])
    _run(["extract", "--mimic-dir", str(mimic), "--out", str(cohort)])
    _run(["partition", "--cohort", str(cohort), "--out", str(fed), "--hospitals",
          str(args.hospitals), "--non-iid", "--seed", str(args.seed)])
    _run(["train", "--fed", str(fed), "--out", str(run), "--strategy", "horizontal",
          "--rounds", str(args.rounds), "--local-epochs", str(args.local_epochs),
          "--seed", str(args.seed)])
    console.print(Rule("[bold green]demo finished"))
    console.print(f"everything is in [bold]{work}/[/] ({time.perf_counter() - began:.0f} s): "
                  f"synthetic MIMIC-IV in {mimic}, the cohort in {cohort}, "
                  f"{args.hospitals} hospitals in {fed} (label prevalence plot: "
                  f"{fed}/label_prevalence.png), the secure horizontal run in {run}.")


if __name__ == "__main__":
    main()
