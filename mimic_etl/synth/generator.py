"""Orchestration: validate, stream every chunk's rows to .csv.gz, summarise.

chartevents (about 70 % of all rows) is generated and written by a worker process
(chartworker.py) while this process writes the other tables, each through its own writer
thread (writer.py), so both cores are busy.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import base_manifest, write_json
from crypten_fl.common.outdir import atomic_output_dir
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.common.writing import write_errors
from crypten_fl.mimic_etl.synth import dictionaries
from crypten_fl.mimic_etl.synth.chartworker import ChartWorker
from crypten_fl.mimic_etl.synth.chunks import build_chunk, chunk_sizes, other_rows
from crypten_fl.mimic_etl.synth.meds_format import write_meds
from crypten_fl.mimic_etl.synth.schema import TABLES, VERSIONS, table_path
from crypten_fl.mimic_etl.synth.writer import TableWriters

MAX_PATIENTS = 500_000  # the id scheme has room for 1.25 M patients incl. non-ICU ones
SUMMARY_FILE = "synth_summary.json"
TASK = "synth: ICU patients"


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate`` wrote: rows and bytes per table, cohort counts, wall time."""

    out: Path
    version: str
    seed: int
    icu_patients: int
    patients: int
    admissions: int
    icu_stays: int
    rows: dict[str, int] = field(default_factory=dict)  # per table (csv) or file (meds)
    bytes: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    format: str = "csv"

    @property
    def total_rows(self) -> int:
        """Rows over all tables."""
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        """Overall throughput."""
        return self.total_rows / max(self.elapsed_seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["out"] = str(self.out)
        out["total_rows"] = self.total_rows
        out["rows_per_second"] = round(self.rows_per_second)
        return out


FORMATS: tuple[str, ...] = ("csv", "meds")


def validate(patients: int, seed: int, version: str, format: str = "csv") -> None:
    """Raise UserError for arguments generate() cannot honour."""
    if format not in FORMATS:
        raise UserError(f"--format {format}: must be one of {', '.join(FORMATS)}")
    if version not in VERSIONS:
        raise UserError(f"--version {version}: must be one of {', '.join(VERSIONS)}")
    if patients < 1:
        raise UserError(f"--patients {patients}: must be at least 1")
    if patients > MAX_PATIENTS:
        raise UserError(f"--patients {patients}: at most {MAX_PATIENTS:,} are supported")
    if seed < 0:
        raise UserError(f"--seed {seed}: must be 0 or more")


def generate(
    out: Path,
    patients: int,
    seed: int = 0,
    version: str = "3.1",
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
    format: str = "csv",
) -> SynthSummary:
    """Write a synthetic MIMIC-IV release (hosp/ and icu/ .csv.gz, or MEDS) to ``out``.

    Args:
        out: output directory (created; must be empty or absent unless ``overwrite``).
        patients: number of patients with at least one ICU stay (about 1.25 stays each);
            about 25 % more patients without an ICU stay are added.
        seed: random seed; the same seed and arguments give byte-identical .csv.gz files.
        version: MIMIC-IV release to imitate, "2.2" or "3.1".
        overwrite: replace an existing non-empty ``out`` (only once the new one is complete).
        progress: ``progress(task, done, total)`` callback, counted in ICU patients.
        format: "csv" (the PhysioNet layout) or "meds" (the same patients as a MEDS dataset:
            data/{train,held_out}/0.parquet and metadata/, see meds_format.py).

    Returns:
        A SynthSummary, also written to ``out/synth_summary.json``.

    >>> generate(Path("mimic"), patients=100, seed=0)  # doctest: +SKIP
    """
    validate(patients, seed, version, format)
    with write_errors(Path(out)):  # disk full, permissions changed under us...
        return _generate(Path(out), patients, seed, version, overwrite, progress, format)


def _generate(out: Path, patients: int, seed: int, version: str, overwrite: bool,
              progress: ProgressFn, format: str) -> SynthSummary:
    started = time.perf_counter()
    sizes = chunk_sizes(patients)
    with atomic_output_dir(out, overwrite, command="synth") as tmp:
        release = tmp if format == "csv" else tmp / ".release"
        for folder in {folder for folder, _ in TABLES.values()}:
            (release / folder).mkdir(parents=True)
        paths = {name: (table_path(release, name), cols) for name, (_, cols) in TABLES.items()}
        chart_path = paths.pop("chartevents")[0]
        worker = ChartWorker(chart_path, seed, version, sizes)
        try:
            with TableWriters(paths) as writers:
                counts = _write_chunks(writers, worker, seed, version, sizes, progress)
            while not worker.finished:
                worker.poll(wait=0.5)
                _report(progress, sizes, len(sizes), worker.chunks_done)
        finally:
            worker.stop()
        rows = {**writers.rows(), "chartevents": worker.rows or 0}
        sizes_on_disk = {t: table_path(release, t).stat().st_size for t in TABLES}
        rows = {t: rows[t] for t in TABLES}
        if format == "meds":
            try:
                written = write_meds(release, tmp, version, seed, progress)
            except duckdb.Error as err:
                message = " ".join(str(err).split("\n\n", 1)[0].split())
                raise UserError(f"--out {out}: writing the MEDS dataset failed ({message})") \
                    from err
            shutil.rmtree(release)
            rows = {name: n for name, (n, _) in written.items()}
            sizes_on_disk = {name: size for name, (_, size) in written.items()}
        summary = SynthSummary(
            out=out, version=version, seed=seed, icu_patients=patients,
            patients=counts["patients"], admissions=counts["admissions"],
            icu_stays=counts["stays"], rows=rows, bytes=sizes_on_disk,
            elapsed_seconds=round(time.perf_counter() - started, 2), format=format,
        )
        manifest = base_manifest(
            "synth", {"patients": patients, "version": version, "overwrite": overwrite,
                      "format": format}, seed)
        write_json(tmp / SUMMARY_FILE, {**manifest, **summary.to_dict()})
    return summary


def _write_chunks(writers: TableWriters, worker: ChartWorker, seed: int, version: str,
                  sizes: list[int], progress: ProgressFn) -> dict[str, int]:
    """Write the dictionaries and every chunk's non-chartevents rows; return cohort counts."""
    for name, frame in _dictionaries():
        writers[name].write(frame)
    ids = {"labevent": 1, "specimen": 10_000_000, "pharmacy": 10_000_000}
    counts = {"patients": 0, "admissions": 0, "stays": 0}
    progress(TASK, 0, sum(sizes))
    for k, n_icu in enumerate(sizes):
        chunk = build_chunk(seed, k, n_icu, version)
        for name, frame in other_rows(chunk, ids):
            writers[name].write(frame)
        counts["patients"] += chunk.cohort.n_patients
        counts["admissions"] += len(chunk.cohort.a_patient)
        counts["stays"] += len(chunk.cohort.s_adm)
        worker.poll()
        _report(progress, sizes, k + 1, worker.chunks_done)
    return counts


def _report(progress: ProgressFn, sizes: list[int], main_done: int, chart_done: int) -> None:
    done = min(main_done, chart_done)
    progress(TASK, sum(sizes[:done]), sum(sizes))


def _dictionaries() -> list[tuple[str, pl.DataFrame]]:
    return [("d_icd_diagnoses", dictionaries.d_icd_diagnoses()),
            ("d_labitems", dictionaries.d_labitems()), ("d_items", dictionaries.d_items())]
