"""The install puts nothing with a generic name into site-packages: everything is crypten_fl.*.

A wheel is built from the repository and installed into a directory of its own next to another
directory holding unrelated top-level packages named ``cli`` and ``sql`` (as any distribution may
ship): both import, and crypten-fl's SQL files come with it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("cli", "common", "sql", "fedtrain", "mimic_etl")


def test_every_package_folder_is_installed_under_the_namespace() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"crypten_fl." + ".".join(init.parent.relative_to(REPO).parts)
               for root in FOLDERS for init in (REPO / root).rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders
    assert setuptools["package-dir"] == {f"crypten_fl.{f}": f for f in FOLDERS}


def test_the_wheel_has_one_top_level_name_and_lives_next_to_a_cli_package(tmp_path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(REPO), "-w", str(tmp_path / "wheel")],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"crypten_fl", "crypten_fl-0.1.0.dist-info"}
    assert "crypten_fl/sql/cohort.sql" in names and "crypten_fl/sql/features.csv" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    other = tmp_path / "other"
    for name in ("cli", "sql"):  # somebody else's packages with the generic names
        (other / name).mkdir(parents=True)
        (other / name / "__init__.py").write_text(f"WHO = 'another {name}'\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(target)!r}, {str(other)!r}]
        import cli, sql
        import crypten_fl.cli.app, crypten_fl.sql
        assert cli.WHO == "another cli" and sql.WHO == "another sql"
        assert crypten_fl.cli.app.__file__.startswith({str(target)!r})
        assert (crypten_fl.sql.SQL_DIR / "cohort.sql").is_file()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.stdout.strip() == "ok", done.stderr
