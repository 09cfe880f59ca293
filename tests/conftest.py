"""Set-up shared by every test module (runs before any of them is imported)."""

from __future__ import annotations

import os

# pytest-xdist's workers (``make test`` runs two) start with COLUMNS=80 in their environment;
# rich's module-level consoles (cli/common.py) would freeze that width at import, and the CLI
# tests could then no longer widen it per call (CliRunner's ``env={"COLUMNS": ...}``) as they
# do in a single-process run.
os.environ.pop("COLUMNS", None)
