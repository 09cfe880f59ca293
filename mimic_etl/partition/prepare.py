"""`prepare`: one site's own cohort -> its hospital directory, without any other site's data.

A real hospital never pools its data with the others: it runs ``extract`` on its own MIMIC-format
tables, then ``prepare`` splits its cohort by patient into train/val/test and writes the
directory that ``crypten-fl node`` (or ``train --fed``, with the other sites' directories next to
it) reads. It is the partition code with one hospital holding every patient (``partition
--hospitals 1 --iid`` with the same seed writes the same files), so the directory is exactly a
``FED/hospital_<k>/`` of docs/data-contracts.md, schema fingerprint included.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import base_manifest, read_json
from crypten_fl.common.outdir import atomic_output_dir
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.common.writing import write_errors
from crypten_fl.mimic_etl.partition.cohort import load_cohort
from crypten_fl.mimic_etl.partition.patients import build_patient_table
from crypten_fl.mimic_etl.partition.pipeline import check_options, horizontal_plan
from crypten_fl.mimic_etl.partition.splits import DEFAULT_SPLIT
from crypten_fl.mimic_etl.partition.summary import HospitalSummary
from crypten_fl.mimic_etl.partition.writer import write_hospital

COMMAND = "prepare"
_HOSPITAL_DIR = re.compile(r"hospital_(\d+)")


@dataclass(frozen=True)
class PreparedSite:
    """What `prepare` wrote: the directory, its counts and its schema fingerprint."""

    out: Path
    hospital: HospitalSummary
    schema_sha256: str
    seed: int
    elapsed_seconds: float


def hospital_index(hospital: int | None, out: Path) -> int:
    """The site's hospital index: ``hospital``, else the k of an ``--out`` named
    ``hospital_<k>``, else 0; the two must agree when both are given."""
    named = _HOSPITAL_DIR.fullmatch(Path(out).name)
    if hospital is None:
        return int(named.group(1)) if named else 0
    if hospital < 0:
        raise UserError(f"--hospital {hospital}: must be 0 or more")
    if named and int(named.group(1)) != hospital:
        raise UserError(f"--hospital {hospital}: --out {out} is named for hospital "
                        f"{named.group(1)}; give the same index or rename --out")
    return hospital


def prepare(
    cohort: Path,
    out: Path,
    hospital: int | None = None,
    split: Sequence[float] = DEFAULT_SPLIT,
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
) -> PreparedSite:
    """Write this site's hospital directory from its own COHORT/ (docs/data-contracts.md).

    Args:
        cohort: COHORT/ directory written by ``extract`` from this site's data.
        out: the hospital directory to write (atomically), e.g. ``FED/hospital_2``.
        hospital: this site's index in the federation (default: from ``out``'s name, else 0).
        split: train/val/test fractions of the site's patients (all stays of a patient share
            one split).
        seed: seed of the patient split.
        overwrite: replace an earlier ``prepare`` output at ``out``.
        progress: progress callback.
    """
    start = time.perf_counter()
    cohort, out = Path(cohort), Path(out)
    index = hospital_index(hospital, out)
    check_options(cohort, out, 1, "iid", 0.5, 0, split, seed, overwrite, command=COMMAND)
    data = load_cohort(cohort, progress)
    patients = build_patient_table(data.static, data.labels)
    plan = horizontal_plan(data, patients, 1, "iid", 0.5, split, np.random.default_rng(seed))
    rows = plan.split_rows[0]
    if not len(rows["train"]):
        raise UserError(f"--split {','.join(f'{f:g}' for f in split)}: leaves no patient of "
                        f"--cohort {cohort} ({patients.n_patients} patients) for training")
    params = {"cohort": str(cohort), "out": str(out), "hospital": index, "split": list(split)}
    header = base_manifest(COMMAND, params, seed)
    reads = {"--cohort": [cohort, *data.input_files()]}
    with write_errors(out), atomic_output_dir(out, overwrite, reads=reads,
                                              command=COMMAND) as tmp:
        progress("write hospital directory", 0, 1)
        view = dataclasses.replace(plan.views[0], index=index)
        written = write_hospital(tmp, data, view, rows, plan.keys, header)
        fingerprint = str(read_json(tmp / "manifest.json")["schema_sha256"])
        progress("write hospital directory", 1, 1)
    return PreparedSite(out=out, hospital=written, schema_sha256=fingerprint, seed=seed,
                        elapsed_seconds=round(time.perf_counter() - start, 3))

