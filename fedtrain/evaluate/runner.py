"""`crypten-fl evaluate` as a library call: evaluate a finished run and write RUN/eval/.

    >>> result = evaluate(EvalOptions(run=Path("run")))      # doctest: +SKIP
    >>> result.report["overall"]["macro"]["auroc"]            # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import atomic_output_dir
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.common.writing import write_errors
from crypten_fl.fedtrain.evaluate.cross_hospital import check_possible, leave_one_hospital_out
from crypten_fl.fedtrain.evaluate.parties import EvalSettings, Evaluation, EventFn, evaluate_parties
from crypten_fl.fedtrain.evaluate.plots import evaluation_figures
from crypten_fl.fedtrain.evaluate.report import write_report
from crypten_fl.fedtrain.evaluate.runs import RunInfo, open_run, read_config, run_reads
from crypten_fl.fedtrain.evaluate.thresholds import parse_rule

MAX_BINS = 100_000
PLAIN_REVEALS = ("INSECURE reference path: the coordinator received every hospital's "
                 "predictions, labels and subgroup attributes")


def reveals(info: RunInfo, secure: bool) -> str:
    """What this evaluation revealed, and to whom (written into the report)."""
    if not secure:
        return PLAIN_REVEALS
    text = ("to every hospital: the pooled validation score histograms and the pooled test "
            "histograms, squared-error sums and confusion counts"
            + ("" if info.vertical else " (overall and per subgroup)")
            + "; to the coordinator, in addition: each hospital's own test metrics")
    if info.vertical:
        text += ("; to the label party: the joint model's logits of the validation and test "
                 "stays (as in training)")
    return text


@dataclass
class EvalOptions:
    """Options of `crypten-fl evaluate` (see its --help)."""

    run: Path
    cross_hospital: bool = False
    secure: bool = True
    bins: int = 1000
    threshold: str = "youden"
    seed: int | None = None  # of the --cross-hospital retraining (None: the run's own seed)
    overwrite: bool = False


@dataclass
class EvalResult:
    """Where the report went and what it says."""

    out_dir: Path
    report: dict[str, Any]
    figures: list[str]


def _check(options: EvalOptions) -> tuple[RunInfo, EvalSettings]:
    rule = parse_rule(options.threshold)
    if not 2 <= options.bins <= MAX_BINS:
        raise UserError(f"--bins {options.bins}: must be between 2 and {MAX_BINS}")
    if options.cross_hospital:
        check_possible(read_config(options.run).strategy, 2)
    info = open_run(options.run)
    if options.cross_hospital:
        check_possible(info.strategy, len(info.hospitals))
    return info, EvalSettings(options.secure, options.bins, rule)


def _party_progress(progress: ProgressFn, total: int) -> EventFn:
    done: set[int] = set()

    def on_event(rank: int, event: dict[str, Any]) -> None:
        if event.get("event") == "done":
            done.add(rank)
            progress("evaluating at each hospital", len(done), total)
    return on_event


def build_report(info: RunInfo, settings: EvalSettings, main: Evaluation,
                 cross: dict[str, Any] | None) -> dict[str, Any]:
    """The content of metrics.json."""
    report: dict[str, Any] = {
        "run": str(info.path), "strategy": info.strategy, "trained_securely": info.config.secure,
        "evaluation": {"mode": "secure" if settings.secure else "plain", "method": main.method,
                       "bins": settings.bins, "threshold_rule": str(settings.rule),
                       "reveals": reveals(info, settings.secure)},
        "label_names": info.label_names,
        "thresholds": main.thresholds,
        "overall": main.pooled,
        "per_hospital": main.per_hospital,
        "subgroups": main.subgroups,
        "cross_hospital": cross,
    }
    if main.subgroups is None:
        report["subgroups_note"] = ("not computed for vertical runs: the subgroup attributes and "
                                    "the labels are held by different parties")
    return report


def _extends_earlier(out: Path, settings: EvalSettings, cross_seed: int | None) -> bool:
    """Whether RUN/eval holds an evaluation the new one contains entirely: same mode, bins and
    threshold rule (so the same figures, which are deterministic), and any leave-one-hospital-out
    part is redone with the same seed. Such an evaluation is replaced without --overwrite, so
    that `evaluate --cross-hospital` works right after `evaluate`."""
    try:
        old = json.loads((out / "metrics.json").read_text())
        done = old["evaluation"]
        same = ((done["mode"], done["bins"], done["threshold_rule"])
                == ("secure" if settings.secure else "plain", settings.bins, str(settings.rule)))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    earlier_cross = old.get("cross_hospital")
    return same and (not earlier_cross or earlier_cross.get("seed") == cross_seed)


def evaluate(options: EvalOptions, progress: ProgressFn = no_progress) -> EvalResult:
    """Evaluate ``options.run`` at its hospitals (and leave-one-hospital-out); write RUN/eval/."""
    info, settings = _check(options)
    out = info.path / "eval"
    seed = info.config.seed if options.seed is None else options.seed
    replace = options.overwrite or _extends_earlier(
        out, settings, seed if options.cross_hospital else None)
    with (write_errors(out, "evaluation output"),
          atomic_output_dir(out, replace, option="evaluation output",
                            reads=run_reads(info), command="evaluate") as tmp):
        progress("evaluating at each hospital", 0, len(info.hospitals))
        main = evaluate_parties(info, info.path, settings, subgroups=not info.vertical,
                                on_event=_party_progress(progress, len(info.hospitals)))
        cross = None
        if options.cross_hospital:
            cross = leave_one_hospital_out(info, settings, tmp / "cross_hospital",
                                           out / "cross_hospital", seed, progress)
        report = build_report(info, settings, main, cross)
        write_report(tmp, report)
        figures = evaluation_figures(tmp, report, main.histograms)
    return EvalResult(out, report, figures)
