"""`make demo`: the whole pipeline on synthetic data, exactly as a user would type it.

    python -m cli.demo --workdir demo-output --patients 3000 --seed 7 [--privacy]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time
from pathlib import Path

from crypten_fl.cli.app import app
from crypten_fl.cli.common import console
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import check_replaceable, write_marker
from crypten_fl.fedtrain.privacy.audit import OVERFITTING
from rich.markup import escape
from rich.rule import Rule


def _run(args: list[str]) -> None:
    console.print(Rule(f"[bold]$ crypten-fl {shlex.join(args)}"))
    began = time.perf_counter()
    try:
        app(args, standalone_mode=False)
    except SystemExit as err:  # typer.Exit inside standalone_mode=False
        if err.code:
            raise
    console.print(f"[dim]({time.perf_counter() - began:.1f} s)[/]")


def _schedule(args: argparse.Namespace) -> list[str]:
    """--rounds/--local-epochs when given; otherwise train's defaults apply."""
    return [arg for option, value in (("--rounds", args.rounds),
                                      ("--local-epochs", args.local_epochs))
            if value is not None for arg in (option, str(value))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"))
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--hospitals", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=None,
                        help="federated rounds (default: train's default)")
    parser.add_argument("--local-epochs", type=int, default=None,
                        help="local epochs per round (default: train's default)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report", action="store_true",
                        help="also train every strategy and baseline and compare them")
    parser.add_argument("--privacy", action="store_true",
                        help="also audit membership leakage: an overfitting horizontal run "
                             "without DP and with DP-SGD at ε = 1, both audited and compared")
    args = parser.parse_args()
    work = args.workdir
    try:  # the demo's own directory is re-created on every run; a user's folder never is
        if work.is_dir() and any(work.iterdir()):
            check_replaceable(work, "--workdir", "demo")
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        write_marker(work, "demo")
    except (UserError, OSError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        raise SystemExit(1) from None
    mimic, cohort, fed, run = work / "mimic-iv", work / "cohort", work / "fed", work / "run"
    began = time.perf_counter()
    _run(["synth", "--out", str(mimic), "--patients", str(args.patients), "--seed",
          str(args.seed)])
    _run(["extract", "--mimic-dir", str(mimic), "--out", str(cohort)])
    _run(["partition", "--cohort", str(cohort), "--out", str(fed), "--hospitals",
          str(args.hospitals), "--non-iid", "--seed", str(args.seed)])
    _run(["train", "--fed", str(fed), "--out", str(run), "--strategy", "horizontal",
          *_schedule(args),
          "--seed", str(args.seed)])
    # the secure metrics, and how well the federated model carries over to a hospital it never
    # saw (retrained without each hospital in turn)
    _run(["evaluate", "--run", str(run), "--cross-hospital"])
    if args.report:
        _report(args, work, cohort, fed, run)
    if args.privacy:
        _privacy(args, work, fed, run)
    console.print(Rule("[bold green]demo finished"))
    console.print(f"everything is in [bold]{work}/[/] ({time.perf_counter() - began:.0f} s): "
                  f"synthetic MIMIC-IV in {mimic}, the cohort in {cohort}, "
                  f"{args.hospitals} hospitals in {fed} (label prevalence plot: "
                  f"{fed}/label_prevalence.png), the secure horizontal run in {run}; "
                  f"the evaluation report, leave-one-hospital-out included, is "
                  f"[bold]{run}/eval/tables.md[/] with its plots in {run}/eval/.")


def _report(args: argparse.Namespace, work: Path, cohort: Path, fed: Path, run: Path) -> None:
    """Every other strategy and baseline on the same federation, then one comparison."""
    common = [*_schedule(args),
              "--seed", str(args.seed)]
    runs = [run]
    for strategy in ("centralized", "local", "fedper", "fedmtl", "split"):
        out = work / f"run-{strategy}"
        _run(["train", "--fed", str(fed), "--out", str(out), "--strategy", strategy, *common])
        runs.append(out)
    vfed = work / "fed-vertical"
    _run(["partition", "--cohort", str(cohort), "--out", str(vfed), "--vertical", "--seed",
          str(args.seed)])
    _run(["train", "--fed", str(vfed), "--out", str(work / "run-vertical"), "--strategy",
          "vertical", *common])
    runs.append(work / "run-vertical")
    _run(["compare", *map(str, runs), "--out", str(work / "compare")])


def _privacy(args: argparse.Namespace, work: Path, fed: Path, run: Path) -> None:
    """Membership-inference audits: the demo run, and an overfitting run without and with DP."""
    overfit = ["--rounds", str(OVERFITTING["rounds"]), "--local-epochs",
               str(OVERFITTING["local_epochs"]), "--dropout", str(OVERFITTING["dropout"]),
               "--seed", str(args.seed)]
    runs = [run, work / "run-overfit", work / "run-overfit-dp1"]
    _run(["train", "--fed", str(fed), "--out", str(runs[1]), *overfit])
    _run(["train", "--fed", str(fed), "--out", str(runs[2]), *overfit, "--dp-epsilon", "1"])
    for audited in runs:
        _run(["audit", "--run", str(audited), "--seed", str(args.seed)])
    _run(["compare", *map(str, runs), "--out", str(work / "compare-privacy")])


if __name__ == "__main__":
    main()
