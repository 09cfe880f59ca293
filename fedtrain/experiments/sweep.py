"""`crypten-fl sweep`: train one strategy at several privacy budgets ε; utility against ε.

Each ε gets a complete run under ``OUT/eps_<ε>/`` (``eps_inf`` = DP-SGD off). The table holds the
target ε, the ε spent (largest over hospitals, from privacy.json) and the test macro-AUROC (from
test_metrics.json); the figure plots macro-AUROC against ε on a log axis, with the non-private
run as a horizontal line. With ``audit`` every run is also attacked by `crypten-fl audit`'s loss
attack (RUN/audit/): the table and the figure then show the attack AUROC beside the utility,
which DP must keep at chance (0.5).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import write_json
from crypten_fl.common.outdir import atomic_output_dir, check_output_dir
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.common.writing import write_errors
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.evaluate.parties import EventFn
from crypten_fl.fedtrain.evaluate.plots import epsilon_curve
from crypten_fl.fedtrain.evaluate.tables import Table, to_markdown
from crypten_fl.fedtrain.experiments.compare import read_run
from crypten_fl.fedtrain.privacy.audit import AuditOptions, audit
from crypten_fl.fedtrain.run.coordinator import train
from crypten_fl.fedtrain.run.federation import federation_reads, read_federation


@dataclass
class SweepResult:
    """Where the sweep went and one row per ε."""

    out_dir: Path
    rows: list[dict[str, Any]]


def parse_epsilons(text: str) -> list[float | None]:
    """``"0.1,1,inf"`` → ``[0.1, 1.0, None]`` (None = no DP); bad values are a UserError."""
    values: list[float | None] = []
    for item in (t.strip() for t in str(text).split(",")):
        if item.lower() in ("inf", "infinity", "none"):
            values.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            raise UserError(f"--dp-epsilon {text!r}: {item!r} is not a positive number or inf")
        values.append(value)
    labels = [epsilon_label(v) for v in values]
    if len(set(labels)) != len(labels):
        raise UserError(f"--dp-epsilon {text!r}: a value is repeated")
    return values


def epsilon_label(epsilon: float | None) -> str:
    """Directory suffix and display name of ε: ``inf``, ``0.1``, ``10``."""
    return "inf" if epsilon is None else f"{epsilon:g}"


def sweep_table(rows: list[dict[str, Any]]) -> Table:
    """ε target, ε spent and macro-AUROC per run, and the attack AUROC when audited."""
    audited = any(r.get("attack_auroc") is not None for r in rows)
    return Table("macro-AUROC against the privacy budget",
                 ["ε target", "ε spent", "macro AUROC", *(["attack AUROC"] if audited else []),
                  "run"],
                 [[r["label"], r["epsilon_spent"] if r["epsilon_spent"] is not None else "no DP",
                   r["macro_auroc"], *([r.get("attack_auroc")] if audited else []), r["run"]]
                  for r in rows])


def _round_progress(progress: ProgressFn, label: str, rounds: int) -> EventFn:
    def on_event(rank: int, event: dict[str, Any]) -> None:
        if event.get("event") == "round":
            progress(f"ε = {label}: rounds", int(event["round"]), rounds)
    return on_event


def _validated(base: TrainConfig, epsilons: list[float | None]) -> list[TrainConfig]:
    """``base`` at each ε, checked. A refusal that only some of the ε values meet names the
    first of them (vertical's ``--init-from`` has no run without DP, for example)."""
    configs, refused = [], []
    for epsilon in epsilons:
        try:
            configs.append(strategies.validate(base.with_dp_sgd(epsilon)))
        except UserError as err:
            refused.append((epsilon, err))
    if refused and len(refused) == len(epsilons):
        raise refused[0][1]
    if refused:
        epsilon, err = refused[0]
        raise UserError(f"--dp-epsilon {epsilon_label(epsilon)}: {err}")
    return configs


def sweep(base: TrainConfig, epsilons: list[float | None], out: Path, *,
          overwrite: bool = False, audit_runs: bool = False,
          progress: ProgressFn = no_progress) -> SweepResult:
    """Train ``base`` at each ε and write the runs, sweep.json/.csv/.md and sweep.png to ``out``;
    with ``audit_runs`` also audit each run (loss attack, `crypten-fl audit`'s defaults)."""
    if not epsilons:
        raise UserError("--dp-epsilon: give at least one value")
    if audit_runs and not strategies.get(base.strategy).plaintext_model:
        raise UserError(f"--audit: no party of a {base.strategy} run holds the model the "
                        "attack needs (docs/privacy.md)")
    configs = _validated(base, epsilons)
    check_output_dir(Path(out), overwrite, reads={"--fed": [Path(base.fed)]}, command="sweep")
    reads = federation_reads(Path(base.fed), read_federation(Path(base.fed), base.strategy))
    rows: list[dict[str, Any]] = []
    with (write_errors(Path(out)),
          atomic_output_dir(Path(out), overwrite, reads=reads, command="sweep") as tmp):
        for i, (epsilon, config) in enumerate(zip(epsilons, configs, strict=True)):
            label = epsilon_label(epsilon)
            progress("sweep: runs", i, len(configs))
            run = tmp / f"eps_{label}"
            train(config, run, on_event=_round_progress(progress, label, config.rounds))
            if audit_runs:
                audit(AuditOptions(run=run, seed=base.seed), progress)
            summary = read_run(run)
            rows.append({"label": label, "epsilon_target": epsilon,
                         "epsilon_spent": summary["epsilon_spent"],
                         "macro_auroc": summary["macro_auroc"],
                         "attack_auroc": summary["attack_auroc"], "run": f"eps_{label}"})
        progress("sweep: runs", len(configs), len(configs))
        _write(tmp, base, rows)
    return SweepResult(Path(out), rows)


def _write(out: Path, base: TrainConfig, rows: list[dict[str, Any]]) -> None:
    table = sweep_table(rows)
    write_json(out / "sweep.json", {"strategy": base.strategy, "fed": base.fed,
                                    "base_config": base.to_json(), "runs": rows})
    with open(out / "sweep.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.columns)
        writer.writerows(table.rows)
    (out / "sweep.md").write_text(to_markdown(table))
    private = [r for r in rows if r["epsilon_target"] is not None]
    plain = [r["macro_auroc"] for r in rows if r["epsilon_target"] is None]
    attack = [r["attack_auroc"] for r in private]
    epsilon_curve(out / "sweep.png", [r["epsilon_target"] for r in private],
                  [r["macro_auroc"] for r in private], plain[0] if plain else None,
                  base.strategy, attack=attack if all(a is not None for a in attack) else None)
