"""The command line answers at once: loading it imports none of the heavy libraries.

(How fast it is, is measured by bench/cli_startup.py, never timed here.) Heavy libraries are
imported inside the commands that use them; `crypten-fl --help` and every `COMMAND --help` must
not pay for torch, CrypTen, Opacus, DuckDB or polars.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from crypten_fl.fedtrain.run.coordinator import interrupted_message, partial_dir

HEAVY = ("torch", "crypten", "opacus", "duckdb", "polars", "numpy", "pyarrow", "matplotlib",
         "scipy", "cryptography")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["evaluate", "--help"],
                                  ["audit", "--help"], ["node", "--help"],
                                  ["provision", "--help"], ["prepare", "--help"]])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    script = ("import sys, json\nsys.argv = ['crypten-fl', *json.loads(sys.argv[1])]\n"
              "from crypten_fl.cli.app import app\ntry:\n    app()\nexcept SystemExit:\n    pass\n"
              f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script, json.dumps(argv)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    assert "Usage" in done.stdout


def test_the_interrupted_message_says_what_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert interrupted_message(out) == "no output was written"
    work = partial_dir(out)
    for r in (1, 2):
        (work / "checkpoints" / f"round_{r}").mkdir(parents=True)
        (work / "checkpoints" / f"round_{r}" / "COMPLETE").touch()
    (work / "checkpoints" / "round_3").mkdir()  # not complete: not counted
    assert interrupted_message(out) == (
        f"the 2 completed round(s) are kept in {work}; continue with the same command and "
        "--resume")
