"""The streaming .csv.gz writer: header once, frames in order, CSV quoting, no gzip timestamp."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from crypten_fl.mimic_etl.synth.writer import CsvGzWriter, TableWriters
from hypothesis import given, settings
from hypothesis import strategies as st

COLS = ("id", "text", "when")


def _frame(ids: list[int], texts: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({
        "when": [None] * len(ids),
        "id": ids,
        "text": texts,
    }, schema={"when": pl.Datetime("ms"), "id": pl.Int64, "text": pl.String})


def test_frames_are_appended_in_order_with_one_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    writer = CsvGzWriter(path, COLS)
    writer.write(_frame([1, 2], ["a", None]))
    writer.write(_frame([3], ['say "hi", then go']))
    writer.close()
    assert writer.rows == 3
    text = gzip.decompress(path.read_bytes()).decode()
    assert text == 'id,text,when\n1,a,\n2,,\n3,"say ""hi"", then go",\n'
    assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_empty_table_still_has_its_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv.gz"
    writer = CsvGzWriter(path, COLS)
    writer.close()
    assert gzip.decompress(path.read_bytes()).decode() == "id,text,when\n"


def test_an_error_in_the_writer_thread_reaches_the_caller(tmp_path: Path) -> None:
    writer = CsvGzWriter(tmp_path / "bad.csv.gz", ("id", "missing"))
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        writer.write(_frame([1], ["x"]))
    writer.abort()


def test_table_writers_abort_all_files_on_error(tmp_path: Path) -> None:
    paths = {name: (tmp_path / f"{name}.csv.gz", COLS) for name in ("a", "b")}
    with pytest.raises(RuntimeError), TableWriters(paths) as writers:
        writers["a"].write(_frame([1], ["x"]))
        raise RuntimeError("boom")
    assert all(p.exists() for p, _ in paths.values())  # left for atomic_output_dir to remove


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=6), max_size=4))
def test_any_text_round_trips(tmp_path_factory: pytest.TempPathFactory,
                              chunks: list[list[str | None]]) -> None:
    path = tmp_path_factory.mktemp("rt") / "t.csv.gz"
    writer = CsvGzWriter(path, COLS)
    expected: list[str | None] = []
    for texts in chunks:
        writer.write(_frame(list(range(len(texts))), texts))
        expected += texts
    writer.close()
    back = pl.read_csv(path, infer_schema_length=0) if expected else None
    if back is not None:
        # CSV cannot tell NULL from an empty string, nor keep a lone carriage return
        want = [None if t in (None, "") else t.replace("\r\n", "\n") for t in expected]
        got = [None if t in (None, "") else t.replace("\r\n", "\n") for t in back["text"]]
        assert got == want
