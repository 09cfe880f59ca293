"""`crypten-fl audit` as a library call: membership-inference leakage of a run's final model(s).

    >>> result = audit(AuditOptions(run=Path("run")))            # doctest: +SKIP
    >>> result.report["overall"]["auroc"]["value"]                 # doctest: +SKIP

Structure: one **local analysis per hospital** (fedtrain/privacy/audit_job.py, one process per
hospital, each opening only its own directory and the final model it holds), then an
**aggregation of histograms**: each hospital's member/non-member score histograms on a public
grid are summed securely, and the overall figures come from the sums. No hospital's per-stay
scores are pooled anywhere.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json
from crypten_fl.common.outdir import atomic_output_dir
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.evaluate.runs import RunInfo, open_run, read_config, run_reads
from crypten_fl.fedtrain.launch import EventFn, launch
from crypten_fl.fedtrain.local_training.dp_recipe import default_delta
from crypten_fl.fedtrain.privacy.audit_job import model_index
from crypten_fl.fedtrain.privacy.audit_plots import attack_roc_figure
from crypten_fl.fedtrain.privacy.audit_report import describe_run, write_report
from crypten_fl.fedtrain.privacy.audit_summary import summarise
from crypten_fl.fedtrain.privacy.membership_inference import ATTACKS, DEFAULT_BINS
from crypten_fl.fedtrain.privacy.sampling import rng_for
from crypten_fl.fedtrain.secure import tags

JOB = "crypten_fl.fedtrain.privacy.audit_job:run"
#: training options on top of the defaults that make the demo's model overfit (100 epochs, no
#: dropout), so that DP-SGD's effect on membership leakage is visible (docs/privacy.md)
OVERFITTING: dict[str, Any] = {"rounds": 25, "local_epochs": 4, "dropout": 0.0}
#: a hospital waits this long (at least) for the others at the final secure sum: the reference
#: models of the shadow attack take minutes at the slowest hospital
MIN_TIMEOUT_S = 1800.0
#: the overall bootstrap's random stream (hospital indices are 0 … K−1)
OVERALL_STREAM = 1_000_000


@dataclass
class AuditOptions:
    """Options of `crypten-fl audit` (see its --help)."""

    run: Path
    attack: str = "loss"
    out: Path | None = None  # default RUN/audit
    seed: int = 0
    bootstrap: int = 1000
    hospitals: list[int] | None = None  # default: every hospital
    references: int = 4
    reference_epochs: int | None = None  # default: the run's rounds × local epochs
    reference_fraction: float = 0.5  # of the reference pool each reference model trains on
    bins: int = DEFAULT_BINS
    delta: float | None = None  # default: the run's DP δ, else n_train^-1.1 per hospital
    confidence: float = 0.95
    overwrite: bool = False


@dataclass
class AuditResult:
    """Where the audit went and what it found."""

    out_dir: Path
    report: dict[str, Any]


def _check_options(options: AuditOptions) -> None:
    checks = [
        (options.attack in ATTACKS, f"--attack {options.attack!r}: choose one of "
         + ", ".join(ATTACKS)),
        (0 <= options.bootstrap <= 100_000, "--bootstrap must be between 0 and 100000"),
        (options.references >= 2, "--references must be >= 2 (LiRA estimates a variance)"),
        (options.reference_epochs is None or options.reference_epochs >= 1,
         "--reference-epochs must be >= 1"),
        (0 < options.reference_fraction <= 1, "--reference-fraction must be in (0, 1]"),
        (100 <= options.bins <= 1_000_000, "--bins must be between 100 and 1000000"),
        (options.delta is None or 0 <= options.delta < 1, "--delta must be in [0, 1)"),
        (0.5 <= options.confidence < 1, "--confidence must be in [0.5, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def _open(options: AuditOptions) -> tuple[RunInfo, list[int]]:
    strategy = strategies.get(read_config(options.run).strategy)
    if not strategy.plaintext_model:
        raise UserError(f"--run {options.run}: a {strategy.name} run cannot be audited by one "
                        "party: no party holds the model (the top model stays secret-shared) "
                        "nor a stay's full record (see docs/privacy.md)")
    info = open_run(options.run)
    every = [h.index for h in info.hospitals]
    chosen = sorted(set(options.hospitals)) if options.hospitals else every
    unknown = [h for h in chosen if h not in every]
    if unknown:
        raise UserError(f"--hospitals: no hospital {unknown[0]} in {info.config.fed} "
                        f"(it has {', '.join(map(str, every))})")
    return info, chosen


def hospital_deltas(info: RunInfo, override: float | None) -> dict[int, float]:
    """δ per hospital for ε_lb: ``override``; else the run's DP-SGD δ of that hospital; else the
    δ of its hospital-level (central) DP; else n_train^-1.1 (the DP-SGD default)."""
    if override is not None:
        return {h.index: override for h in info.hospitals}
    path = info.path / "privacy.json"
    privacy = read_json(path) if path.is_file() else {}
    reports = privacy.get("hospitals", {}) if privacy.get("dp_sgd") else {}
    central = privacy.get("central_dp") or {}
    deltas = {}
    for h in info.hospitals:
        report = reports.get(str(h.index)) or reports.get("pooled") or central
        deltas[h.index] = float(report.get("delta", default_delta(h.n_train)))
    return deltas


def _specs(info: RunInfo, options: AuditOptions, chosen: list[int], deltas: dict[int, float]
           ) -> list[dict[str, Any]]:
    config = info.config
    epochs = options.reference_epochs or config.rounds * config.local_epochs
    attack = {"attack": options.attack, "references": options.references, "epochs": epochs,
              "fraction": options.reference_fraction, "lr": config.lr,
              "batch_size": config.batch_size, "seed": options.seed}
    return [{
        "config": config.to_json(), "run_dir": str(info.path),
        "hospital_dirs": [str(h.path)], "hospital": h.index, "n_hospitals": len(info.hospitals),
        "audited": h.index in chosen, "attack": attack, "seed": options.seed,
        "bootstrap": options.bootstrap, "bins": options.bins, "delta": deltas[h.index],
        "confidence": options.confidence,
    } for h in info.hospitals]


def _party_progress(progress: ProgressFn, specs: list[dict[str, Any]]) -> EventFn:
    audited = [s for s in specs if s["audited"]]
    total_refs = len(audited) * specs[0]["attack"]["references"]
    refs: dict[int, int] = {}
    done: set[int] = set()

    def on_event(rank: int, event: dict[str, Any]) -> None:
        if event.get("event") == "reference":
            refs[rank] = int(event["done"])
            progress("reference models (all hospitals)", sum(refs.values()), total_refs)
        elif event.get("event") == "done":
            done.add(rank)
            progress("auditing at each hospital", len(done), len(specs))
    return on_event


def run_parties(info: RunInfo, specs: list[dict[str, Any]], progress: ProgressFn, *,
                job: str = JOB, env: dict[str, str] | None = None
                ) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Launch the per-hospital job; returns the hospitals' results and the summed histograms."""
    work = Path(tempfile.mkdtemp(prefix="crypten-fl-audit-"))
    progress("auditing at each hospital", 0, len(specs))
    try:
        results = launch(job, specs, work, timeout_s=max(info.config.timeout, MIN_TIMEOUT_S),
                         threads_per_party=info.config.threads_per_party, env=env,
                         on_event=_party_progress(progress, specs),
                         party_name=lambda r: f"hospital {specs[r]['hospital']}",
                         secure_transport=not info.config.insecure_transport)
        pooled = np.load(results[0]["pooled_file"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results, pooled


def build_report(info: RunInfo, options: AuditOptions, specs: list[dict[str, Any]],
                 results: list[dict[str, Any]], pooled: np.ndarray) -> dict[str, Any]:
    """The content of audit.json."""
    cls = strategies.get(info.strategy)
    per_hospital = {}
    for spec, res in zip(specs, results, strict=True):
        if res["audited"]:
            (model,) = cls.final_model_files(model_index(info.strategy, res["hospital"]))
            per_hospital[f"hospital_{res['hospital']}"] = {"model": model,
                                                           "delta": spec["delta"], **res["own"]}
    delta = max(s["delta"] for s in specs if s["audited"])
    overall = summarise(pooled[0], pooled[1], delta=delta, replicates=options.bootstrap,
                        rng=rng_for(options.seed, OVERALL_STREAM), confidence=options.confidence)
    overall["method"] = (f"summed score histograms ({options.bins} bins on the public grid) of "
                         f"{len(per_hospital)} hospital(s); δ = the largest hospital δ")
    return {
        **describe_run(info, options.attack, specs[0]["attack"]),
        "options": {"seed": options.seed, "bootstrap": options.bootstrap,
                    "hospitals": sorted(int(k.split("_")[1]) for k in per_hospital),
                    "bins": options.bins, "confidence": options.confidence,
                    "delta_override": options.delta},
        "reveals": ("to every hospital: the summed member and non-member score histograms "
                    f"(tag {tags.AUDIT_HISTOGRAMS!r}, 2 × {options.bins} counts) and, as in "
                    "training, the summed normalisation moments; each hospital's own figures "
                    "stay with it (this simulation collects them here)"),
        "per_hospital": per_hospital,
        "overall": overall,
    }


def audit(options: AuditOptions, progress: ProgressFn = no_progress, *, job: str = JOB,
          env: dict[str, str] | None = None) -> AuditResult:
    """Audit ``options.run``: per-hospital analyses, secure sum, RUN/audit/ (or ``--out``).

    ``job`` and ``env`` replace the party job and add to its environment (tests use them to
    watch which files each hospital opens).
    """
    _check_options(options)
    info, chosen = _open(options)
    out = Path(options.out) if options.out is not None else info.path / "audit"
    with atomic_output_dir(out, options.overwrite, option="--out", reads=run_reads(info),
                           command="audit") as tmp:
        specs = _specs(info, options, chosen, hospital_deltas(info, options.delta))
        results, pooled = run_parties(info, specs, progress, job=job, env=env)
        report = build_report(info, options, specs, results, pooled)
        write_report(tmp, report)
        attack_roc_figure(tmp / "audit_roc.png", report)
    return AuditResult(out, report)


def headline(report: dict[str, Any]) -> dict[str, float | None]:
    """Attack AUROC, TPR at 1 % FPR and ε_lb of the overall row (what compare shows)."""
    overall = report.get("overall") or {}
    try:
        return {"attack_auroc": float(overall["auroc"]["value"]),
                "attack_tpr_at_1pct_fpr": float(overall["tpr_at_fpr"]["0.01"]["value"]),
                "epsilon_lower_bound": float(overall["epsilon_lower_bound"]["value"])}
    except (KeyError, TypeError, ValueError):
        return {"attack_auroc": math.nan, "attack_tpr_at_1pct_fpr": math.nan,
                "epsilon_lower_bound": math.nan}
