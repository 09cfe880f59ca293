"""Small synthetic releases shared by the tests/test_synth*.py modules (generated once per run)."""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from crypten_fl.mimic_etl.synth import generate
from crypten_fl.mimic_etl.synth.schema import table_path

_CACHE: dict[tuple[int, int, str], Path] = {}


def release(factory: pytest.TempPathFactory, patients: int = 150, seed: int = 1,
            version: str = "3.1") -> Path:
    """A generated release (cached for the whole test session)."""
    key = (patients, seed, version)
    if key not in _CACHE:
        out = factory.mktemp(f"synth-{patients}-{seed}-{version}") / "mimic"
        generate(out, patients, seed=seed, version=version)
        _CACHE[key] = out
    return _CACHE[key]


@functools.cache
def signal_bench() -> ModuleType:
    """bench/synth_signal.py, loaded from its path (bench/ is not an installed package)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "synth_signal.py"
    spec = importlib.util.spec_from_file_location("synth_signal", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(root: Path, table: str) -> pl.DataFrame:
    """A table with every column as text (empty field -> null), exactly as written."""
    return pl.read_csv(table_path(root, table), infer_schema_length=0)


def header(root: Path, table: str) -> list[str]:
    """The first line of a table, split on commas."""
    with gzip.open(table_path(root, table), "rt") as fh:
        return fh.readline().rstrip("\n").split(",")
