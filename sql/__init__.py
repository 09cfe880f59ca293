"""The DuckDB SQL of `crypten-fl extract`: one concept per file, plus the data files it reads.

Each ``<name>.sql`` file is one SELECT whose result becomes the relation ``<name>`` (file name =
relation name, as in mimic-code); a file whose first statement is a ``CREATE`` (``macros.sql``)
is setup, run before everything else. The build order is derived from the references between
files by ``mimic_etl.extract.runner``, never kept by hand. ``{{ name }}`` placeholders are filled
by :func:`render` (the per-feature and per-label column lists, generated from the CSV files).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent

# Data files read by the SQL (through session variables of the same name).
DATA_FILES: dict[str, Path] = {
    "features_csv": SQL_DIR / "features.csv",
    "labels_csv": SQL_DIR / "labels.csv",
    "drug_classes_csv": SQL_DIR / "drug_classes.csv",
}

# Comments, string literals and {{ placeholders }}: scanned together so that neither a "--" in a
# string nor a placeholder quoted in a header comment is mistaken for the other.
_TOKENS = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\{\{\s*([a-z_]+)\s*\}\}", re.DOTALL)


def literal(text: str) -> str:
    """``text`` as a DuckDB string literal: quoted, with every ``'`` doubled (paths, names)."""
    return "'" + text.replace("'", "''") + "'"


def code_only(text: str) -> str:
    """``text`` with comments and string literals blanked (placeholders kept)."""
    return _TOKENS.sub(lambda m: m.group(0) if m.group(1) else " ", text)


def without_comments(text: str) -> str:
    """``text`` with comments blanked (string literals and placeholders kept)."""
    return _TOKENS.sub(lambda m: " " if m.group(0).startswith(("--", "/*")) else m.group(0),
                       text)


@dataclass(frozen=True)
class SqlFile:
    """One file of sql/: its relation name and text."""

    name: str
    path: Path
    text: str

    @property
    def is_setup(self) -> bool:
        """True for files of DDL statements (macros) rather than a single SELECT."""
        return code_only(self.text).lstrip()[:6].upper() == "CREATE"

    @property
    def placeholders(self) -> set[str]:
        """Names of the ``{{ name }}`` placeholders used outside comments and strings."""
        return {m.group(1) for m in _TOKENS.finditer(self.text) if m.group(1)}


def load(directory: Path = SQL_DIR) -> list[SqlFile]:
    """All ``*.sql`` files of ``directory``, sorted by name."""
    return [SqlFile(p.stem, p, p.read_text()) for p in sorted(directory.glob("*.sql"))]


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill ``{{ name }}`` placeholders outside comments; an unknown name is a KeyError."""
    return _TOKENS.sub(lambda m: values[m.group(1)] if m.group(1) else m.group(0), text)
