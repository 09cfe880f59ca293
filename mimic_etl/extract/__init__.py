"""`crypten-fl extract`: MIMIC-IV CSVs -> an ICU cohort on a fixed time grid (DuckDB).

>>> from pathlib import Path
>>> summary = extract(Path("mimic-iv-3.1"), Path("cohort"))  # doctest: +SKIP
>>> summary.n_bins, summary.cohort_flow[-1].step  # doctest: +SKIP
(24, 'has_observation')

The work is done by the SQL files of ``sql/`` (one concept per file, build order derived from
their references); this package locates and checks the inputs, runs the SQL in a scratch DuckDB
database inside the temporary output directory, and writes static.parquet, timeseries.parquet,
labels.parquet, cohort_flow.json and manifest.json. Values are unit-harmonised and
outlier-filtered but never imputed or normalised (that happens per hospital at train time).
"""

from __future__ import annotations

import dataclasses
import graphlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import duckdb
from crypten_fl import sql
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import base_manifest, describe_inputs, write_json
from crypten_fl.common.outdir import atomic_output_dir, check_output_dir
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.common.writing import write_errors
from crypten_fl.mimic_etl.extract import duck, meds, runner, tables
from crypten_fl.mimic_etl.extract.definitions import (
    definition_hashes,
    load_features,
    load_labels,
    source_definitions,
    template_values,
)
from crypten_fl.mimic_etl.extract.summary import (
    ExtractSummary,
    FlowStep,
    manifest_fields,
    read_flow,
    summarize,
)

__all__ = ["ExtractSummary", "extract"]

EXPORTS: dict[str, str] = {
    "static": "static.parquet",
    "timeseries": "timeseries.parquet",
    "labels": "labels.parquet",
}


def extract(
    mimic_dir: Path | None,
    out: Path,
    hours: int = 48,
    bin_hours: int = 2,
    min_age: int = 18,
    min_los_hours: float | None = None,
    threads: int | None = None,
    memory_limit: str = "3GB",
    overwrite: bool = False,
    progress: ProgressFn = no_progress,
    meds_dir: Path | None = None,
    meds_mapping: Path | None = None,
) -> ExtractSummary:
    """Extract the ICU cohort of a MIMIC-IV download (or a MEDS dataset) into ``out``.

    Args:
        mimic_dir: MIMIC-IV root with ``hosp/`` and ``icu/`` (.csv.gz or .csv; v1.x to v3.1);
            None when ``meds_dir`` is given.
        out: output directory (written atomically; must be absent or empty unless ``overwrite``).
        hours: observation window from ICU admission, in hours.
        bin_hours: width of a time bin; must divide ``hours``.
        min_age: minimum age at hospital admission, in years.
        min_los_hours: minimum ICU length of stay in hours; None keeps short stays too.
        threads: DuckDB worker threads (None: all cores).
        memory_limit: DuckDB memory limit (e.g. ``"3GB"``); larger operations spill to disk.
        overwrite: replace a non-empty ``out`` once the new output is complete.
        progress: callback receiving ``(task, done, total)``.
        meds_dir: a MEDS dataset (``data/**/*.parquet``, ``metadata/``) instead of ``mimic_dir``.
        meds_mapping: folder of SQL files and codes.csv mapping MEDS codes to the MIMIC-IV
            tables (default ``sql/meds/``, the MIMIC-IV -> MEDS codes); only with ``meds_dir``.

    Raises:
        UserError: bad option, missing/corrupt table or column, empty cohort, existing output.
    """
    start = time.perf_counter()
    out = Path(out)
    n_bins = _check_options(out, hours, bin_hours, min_age, min_los_hours, threads)
    source: _Source = _source(mimic_dir, meds_dir, meds_mapping)
    duck.check_memory_limit(memory_limit)
    check_output_dir(out, overwrite, reads={source.option: [source.root]}, command="extract")
    source.locate()
    reads = {source.option: [source.root, *_files_and_folders(source.files())]}
    features, labels = load_features(), load_labels()
    variables = {
        "hours": hours, "bin_hours": bin_hours, "n_bins": n_bins, "min_age": min_age,
        "min_los_hours": None if min_los_hours is None else float(min_los_hours),
        **{name: str(path) for name, path in sql.DATA_FILES.items()},
        **source.variables(),
    }
    with write_errors(out), atomic_output_dir(out, overwrite, reads=reads,
                                              command="extract") as tmp:
        session = _Session(source, variables, threads, memory_limit, progress, out)
        seconds, flow = session.run(tmp, template_values(features, labels))
        blame = {"min_age": f"--min-age {min_age}", "min_los": f"--min-los-hours {min_los_hours}"}
        _check_not_empty(flow, blame, f"{source.option} {source.root}")
        summary = summarize(tmp, features, labels, flow, (hours, bin_hours, n_bins))
        summary = dataclasses.replace(
            summary, out=out, step_seconds=seconds, source=session.source_report,
            elapsed_seconds=round(time.perf_counter() - start, 3),
        )
        params = {
            "mimic_dir": None if mimic_dir is None else str(mimic_dir),
            **({} if meds_dir is None else {
                "meds_dir": str(meds_dir),
                "meds_mapping": None if meds_mapping is None else str(meds_mapping)}),
            "out": str(out), "hours": hours, "bin_hours": bin_hours,
            "min_age": min_age, "min_los_hours": min_los_hours, "threads": threads,
            "memory_limit": memory_limit, "overwrite": overwrite,
        }
        manifest = base_manifest("extract", params, seed=None)
        manifest["inputs"] = describe_inputs(source.files())
        manifest.update(manifest_fields(summary, features))
        if session.source_report:
            manifest["source"] = session.source_report
        manifest["definitions"] = {**definition_hashes(), **source.definitions()}
        write_json(tmp / "cohort_flow.json", [dataclasses.asdict(s) for s in flow])
        write_json(tmp / "manifest.json", manifest)
    return summary


class _Source(Protocol):
    """Where the MIMIC-IV tables come from: CSV files, or a MEDS dataset mapped onto them."""

    option: str
    root: Path

    def locate(self) -> None:
        """Find and check the input files (UserError on the first problem)."""

    def files(self) -> list[Path]:
        """Every file read (manifest inputs; the output may not overlap them)."""

    def variables(self) -> dict[str, object]:
        """Extra session variables the source's SQL reads."""

    def definitions(self) -> dict[str, str]:
        """What the source adds to the cohort's definition hashes (its mapping, if custom)."""

    def load(self, session: _Session, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        """Make the tables of ``tables.TABLE_NAMES`` queryable in ``con``; returns a report."""

    def paths(self, relations: frozenset[str]) -> dict[str, Path]:
        """The files behind the input ``relations`` of a step (named in its errors)."""


@dataclasses.dataclass
class _CsvSource:
    """A MIMIC-IV release of CSV files, one view per table."""

    root: Path
    option: str = "--mimic-dir"
    inputs: dict[str, tables.InputTable] = dataclasses.field(default_factory=dict)

    def locate(self) -> None:
        self.inputs = tables.locate(self.root)

    def files(self) -> list[Path]:
        return [Path(t.path) for t in self.inputs.values()]

    def variables(self) -> dict[str, object]:
        return {}

    def definitions(self) -> dict[str, str]:
        return {}

    def paths(self, relations: frozenset[str]) -> dict[str, Path]:
        return {name: self.inputs[name].path for name in relations}

    def load(self, session: _Session, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        """One view per input table (binding samples the file: it can fail here too), then a
        repeated subject_id / hadm_id / stay_id in its own table is a UserError naming it."""
        for name, table in self.inputs.items():
            try:
                con.execute(table.view_sql())
            except duckdb.Error as err:
                raise session.error(err, name, {name: table.path}) from err
        for name, table in self.inputs.items():
            query = table.duplicate_key_sql()
            if query is None:
                continue
            try:
                rows = con.execute(query).fetchall()
            except duckdb.Error as err:
                raise session.error(err, name, {name: table.path}) from err
            if rows:
                value, n, keys = rows[0]
                key = table.spec.key
                raise UserError(
                    f"{table.path}: {key} {value} appears in {n} rows ({keys} {key} value(s) "
                    f"repeated; MIMIC-IV has one row per {key})"
                )
        return {}


@dataclasses.dataclass
class _MedsSource:
    """A MEDS dataset whose events the mapping's SQL turns into the MIMIC-IV tables."""

    root: Path
    mapping: Path
    option: str = "--meds-dir"
    dataset: meds.MedsDataset | None = None
    mapping_files: list[sql.SqlFile] = dataclasses.field(default_factory=list)
    codes_csv: Path | None = None

    def locate(self) -> None:
        self.mapping_files, self.codes_csv = meds.load_mapping(self.mapping)
        self.dataset = meds.locate(self.root)
        meds.check_order(self.dataset)

    def files(self) -> list[Path]:
        return list(self.dataset.shards) if self.dataset else []

    def variables(self) -> dict[str, object]:
        return {"meds_codes_csv": str(self.codes_csv)}

    def definitions(self) -> dict[str, str]:
        return source_definitions(self.mapping)

    def paths(self, relations: frozenset[str]) -> dict[str, Path]:
        assert self.dataset is not None
        return {name: self.dataset.data_dir for name in relations}

    def load(self, session: _Session, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        """The events view, then the mapping's relations; reports what it left out."""
        assert self.dataset is not None
        try:
            con.execute(self.dataset.view_sql())
        except duckdb.Error as err:
            raise session.error(err, meds.EVENTS_VIEW, {"data": self.dataset.data_dir}) from err
        try:
            steps = runner.plan(self.mapping_files, {meds.EVENTS_VIEW}, {}, {},
                                views=meds.STREAMED)
        except (ValueError, graphlib.CycleError) as err:
            raise UserError(f"--meds-mapping {self.mapping}: {err}") from err
        def on_error(err: duckdb.Error, step: runner.Step) -> UserError:
            """A failing mapping step names its SQL file (a data error names data/)."""
            data_error = isinstance(err, duckdb.IOException | duckdb.InvalidInputException)
            culprit = self.dataset.data_dir if data_error else self.mapping / f"{step.name}.sql"
            return session.error(err, step.name, {step.name: culprit})

        session.run_steps(con, steps, on_error)
        return {"format": "meds", "mapping": str(self.mapping),
                "dataset": self.dataset.metadata, **meds.report(con)}


def _source(mimic_dir: Path | None, meds_dir: Path | None, mapping: Path | None) -> _Source:
    """The one input named (``--mimic-dir`` or ``--meds-dir``)."""
    if (mimic_dir is None) == (meds_dir is None):
        raise UserError("--mimic-dir / --meds-dir: give exactly one of them")
    if meds_dir is not None:
        return _MedsSource(Path(meds_dir), Path(mapping or meds.DEFAULT_MAPPING))
    if mapping is not None:
        raise UserError(f"--meds-mapping {mapping}: only with --meds-dir")
    if not Path(mimic_dir).is_dir():
        raise UserError(f"--mimic-dir {mimic_dir}: directory not found")
    return _CsvSource(Path(mimic_dir))


@dataclasses.dataclass
class _Session:
    """One DuckDB run of the sql/ files over the located inputs, in a scratch database."""

    source: _Source
    variables: dict[str, object]
    threads: int | None
    memory_limit: str
    progress: ProgressFn
    out: Path  # named in a disk-full error
    source_report: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # per step, all plans

    def run(self, tmp: Path, values: dict[str, str]) -> tuple[dict[str, float], list[FlowStep]]:
        """Run every step (exports into ``tmp``); seconds per step and the cohort flow.

        The scratch database and spill files live in ``tmp/.scratch``, removed at the end.
        """
        scratch = tmp / ".scratch"
        con = duck.connect(
            scratch / "work.duckdb", scratch / "spill", self.threads, self.memory_limit
        )
        try:
            self.prepare(con)
            self.source_report = self.source.load(self, con)
            exports = {name: tmp / file for name, file in EXPORTS.items()}
            steps = runner.plan(sql.load(), set(tables.TABLE_NAMES), exports, values)
            self.run_steps(con, steps)
            return self.seconds, read_flow(con)
        finally:
            con.close()
            shutil.rmtree(scratch, ignore_errors=True)

    def run_steps(
        self,
        con: duckdb.DuckDBPyConnection,
        steps: list[runner.Step],
        on_error: Callable[[duckdb.Error, runner.Step], Exception] | None = None,
    ) -> dict[str, float]:
        """Run planned ``steps`` on up to two cursors (errors through ``on_error``, default
        :meth:`on_error`); seconds per step (also kept in ``self.seconds``)."""
        workers = min(2, self.threads or os.cpu_count() or 1)
        seconds = runner.run(con, steps, on_error or self.on_error, self.progress, self.prepare,
                             workers)
        self.seconds.update(seconds)
        return seconds

    def prepare(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Session variables (per connection: every cursor needs them)."""
        try:  # even this allocates: a --memory-limit of a few KB fails here
            duck.set_variables(cursor, self.variables)
        except duckdb.Error as err:
            raise self.error(err, "setup", {}) from err

    def on_error(self, err: duckdb.Error, step: runner.Step) -> UserError:
        """A failed step as a UserError naming the file it read (or the SQL file)."""
        return self.error(err, step.name, self.source.paths(step.reads))

    def error(self, err: duckdb.Error, step: str, reads: dict[str, Path]) -> UserError:
        """``err`` as a one-line UserError (see :func:`duck.as_user_error`)."""
        return duck.as_user_error(err, step, reads, self.memory_limit, self.out)


def _check_options(
    out: Path,
    hours: int,
    bin_hours: int,
    min_age: int,
    min_los_hours: float | None,
    threads: int | None,
) -> int:
    """Validate the numeric options; returns the number of bins."""
    if hours < 1:
        raise UserError(f"--hours {hours}: must be a positive number of hours")
    if bin_hours < 1:
        raise UserError(f"--bin-hours {bin_hours}: must be a positive number of hours")
    if hours % bin_hours:
        raise UserError(f"--bin-hours {bin_hours}: must divide --hours {hours} exactly")
    if hours // bin_hours > 32767:
        raise UserError(f"--bin-hours {bin_hours}: --hours / --bin-hours must be <= 32767 bins")
    if min_age < 0:
        raise UserError(f"--min-age {min_age}: must be >= 0")
    if min_los_hours is not None and min_los_hours < 0:
        raise UserError(f"--min-los-hours {min_los_hours}: must be >= 0")
    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads}: must be >= 1")
    return hours // bin_hours


def _files_and_folders(files: list[Path]) -> list[Path]:
    """Every file extract reads and the folder holding it (hosp/ and icu/ may be symlinks
    to another disk: the output must not land in them either)."""
    return [*files, *{Path(f).resolve().parent for f in files}]


def _check_not_empty(flow: list[FlowStep], blame: dict[str, str], default: str) -> None:
    """An empty cohort is a UserError naming the option whose criterion removed the last stays.

    ``blame`` maps a step name to the option (with its value) responsible for it.
    """
    if flow and flow[-1].remaining > 0:
        return
    emptied = next((s for s in flow if s.remaining == 0), None)
    if emptied is None or emptied.step == "all_stays":
        raise UserError(f"{default}: icu/icustays has no ICU stays")
    option = blame.get(emptied.step, default)
    raise UserError(
        f"{option}: no ICU stay left after cohort step '{emptied.step}' "
        f"({emptied.description}; removed {emptied.removed})"
    )
