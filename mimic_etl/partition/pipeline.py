"""`partition`: split an extracted cohort (COHORT/) into simulated hospitals (FED/)."""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import base_manifest, describe_inputs, write_json
from crypten_fl.common.outdir import atomic_output_dir, check_output_dir
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.common.writing import write_errors
from crypten_fl.mimic_etl.partition.cohort import Cohort, load_cohort
from crypten_fl.mimic_etl.partition.measures import hospital_js, prevalence
from crypten_fl.mimic_etl.partition.patients import PatientTable, build_patient_table
from crypten_fl.mimic_etl.partition.plot import plot_label_prevalence
from crypten_fl.mimic_etl.partition.schemes import SCHEMES, min_hospital_size
from crypten_fl.mimic_etl.partition.splits import (
    DEFAULT_SPLIT,
    SPLIT_NAMES,
    assign_splits,
    check_split,
)
from crypten_fl.mimic_etl.partition.summary import HospitalSummary, PartitionSummary
from crypten_fl.mimic_etl.partition.vertical import (
    new_federation_secret,
    owns_static,
    parse_feature_groups,
    party_features,
    party_rows,
    pseudonym_keys,
)
from crypten_fl.mimic_etl.partition.writer import HospitalView, write_hospital


@dataclasses.dataclass
class Plan:
    """What each hospital receives, before anything is written."""

    views: list[HospitalView]
    split_rows: list[dict[str, np.ndarray]]  # per hospital: cohort rows per split
    missing: list[int]  # per hospital: stays left out on purpose (vertical)
    keys: np.ndarray  # (N,) record key of every cohort stay
    min_patients: int | None


def partition(
    cohort: Path,
    out: Path,
    hospitals: int | None,
    scheme: str = "dirichlet",
    iid: bool = False,
    alpha: float = 0.5,
    vertical: bool = False,
    feature_groups: str | None = None,
    label_party: int = 0,
    split: Sequence[float] = DEFAULT_SPLIT,
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
) -> PartitionSummary:
    """Split COHORT/ into K simulated hospitals and write FED/ (docs/data-contracts.md).

    Args:
        cohort: COHORT/ directory written by ``extract``.
        out: FED/ directory to write (atomically).
        hospitals: number of hospitals K; for ``vertical`` it may be None (implied by the parties)
            and must otherwise equal the number of parties.
        scheme: horizontal scheme when not ``iid``: ``dirichlet`` (label skew), ``careunit``
            (natural split by first care unit) or ``quantity`` (size skew); ``iid`` also accepted.
        iid: uniformly random patients per hospital (overrides ``scheme``).
        alpha: Dirichlet concentration of ``dirichlet`` and ``quantity`` (smaller = more skewed).
        vertical: every party holds the same stays but other feature groups.
        feature_groups: vertical parties, e.g. ``"vitals;labs;meds,urine,static"`` (the default).
        label_party: vertical: index of the party holding the labels.
        split: train/val/test fractions of each hospital's patients.
        seed: seed of every random choice (except the vertical secret, shuffles and drops).
        overwrite: replace a non-empty ``out``.
        progress: progress callback.

    Returns:
        The per-hospital counts and prevalences, also written to FED/partition.json.
    """
    start = time.perf_counter()
    cohort, out = Path(cohort), Path(out)
    scheme = "iid" if iid else scheme
    check_options(cohort, out, hospitals, scheme, alpha, label_party, split, seed, overwrite)
    data = load_cohort(cohort, progress)
    patients = build_patient_table(data.static, data.labels)
    rng = np.random.default_rng(seed)
    if vertical:
        plan = _vertical_plan(data, patients, hospitals, feature_groups, label_party, split, rng)
    else:
        plan = horizontal_plan(data, patients, hospitals, scheme, alpha, split, rng)
    params = {
        "cohort": str(cohort),
        "out": str(out),
        "hospitals": len(plan.views),
        "scheme": "vertical" if vertical else scheme,
        "alpha": alpha,
        "vertical": vertical,
        "feature_groups": _groups_text(plan.views) if vertical else None,
        "label_party": label_party if vertical else None,
        "split": list(split),
    }
    header = base_manifest("partition", params, seed)
    reads = {"--cohort": [cohort, *data.input_files()]}
    with write_errors(out), atomic_output_dir(out, overwrite, reads=reads,
                                              command="partition") as tmp:
        written = []
        for i, view in enumerate(plan.views):
            progress("write hospitals", i, len(plan.views))
            written.append(
                write_hospital(
                    tmp / f"hospital_{view.index}",
                    data,
                    view,
                    plan.split_rows[i],
                    plan.keys,
                    header,
                    plan.missing[i],
                )
            )
        progress("write hospitals", len(plan.views), len(plan.views))
        summary = _summarise(data, plan, written, params, seed, out, start)
        description = (SCHEMES[scheme].__doc__ or "").split("\n")[0] if not vertical else None
        record = {**header, "inputs": describe_inputs(data.input_files()), **summary.to_dict()}
        record |= {"scheme_description": description, "elapsed_seconds": summary.elapsed_seconds}
        write_json(tmp / "partition.json", record)
        plot_label_prevalence(summary, tmp / "label_prevalence.png")
    return summary


def check_options(
    cohort: Path,
    out: Path,
    hospitals: int | None,
    scheme: str,
    alpha: float,
    label_party: int,
    split: Sequence[float],
    seed: int,
    overwrite: bool,
    command: str = "partition",
) -> None:
    """Everything that can be checked before reading the cohort (``command``: whose output
    ``out`` may replace)."""
    if hospitals is not None and hospitals < 1:
        raise UserError(f"--hospitals {hospitals}: must be at least 1")
    if scheme not in SCHEMES:
        raise UserError(f"--scheme {scheme}: unknown scheme (choose {', '.join(SCHEMES)})")
    if not math.isfinite(alpha) or alpha <= 0:
        raise UserError(f"--alpha {alpha:g}: must be a positive number")
    if label_party < 0:
        raise UserError(f"--label-party {label_party}: must be a party index ≥ 0")
    if seed < 0:
        raise UserError(f"--seed {seed}: must be 0 or more")
    check_split(split)
    check_output_dir(out, overwrite, reads={"--cohort": [cohort]}, command=command)


def horizontal_plan(
    data: Cohort,
    patients: PatientTable,
    hospitals: int | None,
    scheme: str,
    alpha: float,
    split: Sequence[float],
    rng: np.random.Generator,
) -> Plan:
    """Assign patients to hospitals by ``scheme``, then to splits within each hospital (also
    `prepare`'s plan: one hospital holding every patient of the site's cohort)."""
    if hospitals is None:
        raise UserError("--hospitals: required (the number of simulated hospitals)")
    if hospitals > patients.n_patients:
        raise UserError(
            f"--hospitals {hospitals}: more hospitals than the cohort's {patients.n_patients} "
            "patients"
        )
    hospital_of_patient = SCHEMES[scheme](patients, hospitals, alpha, rng)
    split_of_patient = assign_splits(hospital_of_patient, split, rng)
    hospital_of_stay = hospital_of_patient[patients.stay_patient]
    split_of_stay = split_of_patient[patients.stay_patient]
    all_features = np.arange(len(data.features))
    views = [
        HospitalView(k, all_features, data.static_columns, identifiers=True, labels=True)
        for k in range(hospitals)
    ]
    split_rows = [
        {
            name: np.flatnonzero((hospital_of_stay == k) & (split_of_stay == j))
            for j, name in enumerate(SPLIT_NAMES)
        }
        for k in range(hospitals)
    ]
    keys = data.stay_ids.astype(str).astype(object)
    sized = scheme in ("dirichlet", "quantity")
    min_patients = min_hospital_size(patients.n_patients, hospitals) if sized else None
    return Plan(views, split_rows, [0] * hospitals, keys, min_patients)


def _vertical_plan(
    data: Cohort,
    patients: PatientTable,
    hospitals: int | None,
    feature_groups: str | None,
    label_party: int,
    split: Sequence[float],
    rng: np.random.Generator,
) -> Plan:
    parties = parse_feature_groups(feature_groups, data.groups)
    shown = ";".join(",".join(p) for p in parties)
    if hospitals is not None and hospitals != len(parties):
        raise UserError(
            f"--hospitals {hospitals}: --vertical needs one hospital per party and "
            f"--feature-groups {shown!r} defines {len(parties)}"
        )
    if label_party >= len(parties):
        raise UserError(f"--label-party {label_party}: only parties 0..{len(parties) - 1} exist")
    split_of_stay = assign_splits(np.zeros(patients.n_patients, np.int64), split, rng)[
        patients.stay_patient
    ]
    keys = pseudonym_keys(data.stay_ids, new_federation_secret())
    private_rng = np.random.default_rng(secrets.randbits(128))  # not reproducible from the seed
    views, split_rows, missing = [], [], []
    for p, groups in enumerate(parties):
        views.append(
            HospitalView(
                p,
                party_features(data.features, groups),
                data.static_columns if owns_static(groups) else [],
                identifiers=False,
                labels=p == label_party,
                groups=groups,
            )
        )
        rows, dropped = {}, 0
        for j, name in enumerate(SPLIT_NAMES):
            rows[name], d = party_rows(
                np.flatnonzero(split_of_stay == j), p == label_party, private_rng
            )
            dropped += d
        split_rows.append(rows)
        missing.append(dropped)
    return Plan(views, split_rows, missing, keys, None)


def _groups_text(views: list[HospitalView]) -> str:
    return ";".join(",".join(v.groups or ()) for v in views)


def _summarise(
    data: Cohort,
    plan: Plan,
    written: list[HospitalSummary],
    params: dict[str, Any],
    seed: int,
    out: Path,
    start: float,
) -> PartitionSummary:
    """Add JS divergences (computed from exact prevalences) to the per-hospital counts."""
    labelled = [i for i, v in enumerate(plan.views) if v.labels]
    rows = [np.concatenate(list(plan.split_rows[i].values())) for i in labelled]
    pooled = prevalence(data.labels[np.concatenate(rows)])
    per_hospital = np.stack([prevalence(data.labels[r]) for r in rows])
    js = hospital_js(per_hospital, pooled)
    for i, value in zip(labelled, js, strict=True):
        written[i] = dataclasses.replace(written[i], js_divergence=round(float(value), 6))
    return PartitionSummary(
        out=out,
        scheme=str(params["scheme"]),
        vertical=bool(params["vertical"]),
        seed=seed,
        parameters=params,
        hospitals=written,
        pooled_prevalence={
            n: round(float(p), 6) for n, p in zip(data.label_names, pooled, strict=True)
        },
        mean_js_divergence=round(float(js.mean()), 6),
        min_patients_per_hospital=plan.min_patients,
        elapsed_seconds=round(time.perf_counter() - start, 3),
    )
