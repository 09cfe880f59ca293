"""The output guard (common/pathguard.py) and atomic, marker-checked outputs (outdir.py).

Properties of the overlap test on random trees with symbolic links; an overwrite killed with
SIGKILL at every stage keeps the previous output; real commands killed during ``--overwrite``
(extract, train) keep the previous output byte for byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import (
    MARKER,
    atomic_output_dir,
    read_marker,
    replace_dir,
    write_marker,
)
from crypten_fl.common.pathguard import check_disjoint, overlap
from crypten_fl.mimic_etl.extract import extract
from helpers.fuzz_fixtures import TINY_OPTIONS, tiny_federation
from helpers.mimic_fixture import write_mimic
from helpers.parties import temp_for_killed_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (directories as 'dir')."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


# --- overlap: exact cases and properties ---------------------------------------------------

def test_overlap_exact(tmp_path: Path) -> None:
    (tmp_path / "mimic" / "hosp").mkdir(parents=True)
    (tmp_path / "mimic" / "hosp" / "patients.csv.gz").write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "mimic" / "hosp")
    mimic = tmp_path / "mimic"
    assert overlap(mimic, mimic) == "is"
    assert overlap(tmp_path / "mimic" / "." / "hosp" / ".." , mimic) == "is"
    assert overlap(mimic / "icu", mimic) == "lies inside"
    assert overlap(mimic / "a" / "b" / "c", mimic) == "lies inside"  # none of it exists yet
    assert overlap(tmp_path / "link" / "cohort", mimic) == "lies inside"
    assert overlap(tmp_path, mimic) == "contains"
    assert overlap(tmp_path / "link", mimic / "hosp" / "patients.csv.gz") == "contains"
    assert overlap(tmp_path / "elsewhere", mimic) is None
    assert overlap(tmp_path / "mimic2", mimic) is None  # a prefix of the name is not a parent
    assert overlap(mimic, tmp_path / "absent") is None  # nothing there to protect
    with pytest.raises(UserError, match=r"^--out .*/link/x: lies inside --mimic-dir .*/mimic, "):
        check_disjoint(tmp_path / "link" / "x", "--out", {"--mimic-dir": [mimic]})


NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=0, max_size=4)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dirs=st.lists(PATHS, min_size=1, max_size=8),
       links=st.lists(st.tuples(PATHS, PATHS), max_size=3),
       out=PATHS, read=PATHS, relative=st.booleans())
def test_overlap_agrees_with_resolved_paths(tmp_path_factory: pytest.TempPathFactory,
                                            dirs: list[list[str]],
                                            links: list[tuple[list[str], list[str]]],
                                            out: list[str], read: list[str],
                                            relative: bool) -> None:
    """On any tree with symbolic links (dangling ones too), ``overlap`` says what comparing the
    fully resolved paths says, whether the output is spelt absolute or relative."""
    root = tmp_path_factory.mktemp("tree")
    for parts in dirs:
        root.joinpath(*parts).mkdir(parents=True, exist_ok=True)
    for at, to in links:  # links live under root/l/ and point anywhere in the tree
        link = root.joinpath("l", *at)
        with contextlib.suppress(OSError):  # a place already taken (or under a link): skip
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(root.joinpath(*to))
    out_path = root.joinpath("l" if links and out[:1] == ["c"] else "", *out)
    spelt = Path(os.path.relpath(out_path)) if relative else out_path
    read_path = root.joinpath(*read)
    o, r = Path(os.path.realpath(spelt)), Path(os.path.realpath(read_path))
    if not read_path.exists():  # nothing there to protect
        want: str | None = None
    elif o == r:
        want = "is"
    elif r in o.parents:
        want = "lies inside"
    elif os.path.exists(spelt) and o in r.parents:
        want = "contains"
    else:
        want = None
    assert overlap(spelt, read_path) == want, (spelt, read_path, o, r)


def test_overlap_on_a_case_insensitive_file_system(tmp_path: Path) -> None:
    """``Victim/icu`` lies inside ``victim`` where the file system folds case (ext4 casefold)."""
    image, mount = tmp_path / "fold.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(8 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-O", "casefold", str(image)], capture_output=True,
                          check=False)
    if made.returncode != 0 or subprocess.run(
            ["mount", "-o", "loop", str(image), str(mount)], capture_output=True,
            check=False).returncode != 0:
        pytest.skip("no case-insensitive file system here (ext4 casefold needs a kernel with "
                    "CONFIG_UNICODE and root for a loop mount)")
    try:
        folded = mount / "folded"
        folded.mkdir()
        subprocess.run(["chattr", "+F", str(folded)], check=True)
        (folded / "victim" / "icu").mkdir(parents=True)
        assert overlap(folded / "Victim" / "ICU", folded / "victim") == "lies inside"
        assert overlap(folded / "VICTIM", folded / "victim") == "is"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# --- atomic replacement and its marker -------------------------------------------------------

def test_replace_dir_swaps_complete_directories(tmp_path: Path) -> None:
    old, new = tmp_path / "out", tmp_path / "new"
    old.mkdir()
    (old / "a").write_text("old")
    new.mkdir()
    (new / "b").write_text("new")
    replace_dir(new, old)
    assert tree_digest(old) == {"b": hashlib.sha256(b"new").hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_output_leaves_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_output_dir(out, command="synth") as tmp:
        (tmp / "a").write_text("first")
    before = tree_digest(out)
    with pytest.raises(RuntimeError), atomic_output_dir(out, overwrite=True,
                                                          command="synth") as tmp:
        (tmp / "a").write_text("second")
        raise RuntimeError("disk on fire")
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert read_marker(out) == {"tool": "crypten-fl", "version": read_marker(out)["version"],
                                "command": "synth", "entries": ["a"]}


_BLOCKED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from crypten_fl.common.outdir import atomic_output_dir
    with atomic_output_dir(Path(sys.argv[1]), overwrite=True, command="synth") as tmp:
        (tmp / "a").write_text("half of the new output")
        print("inside", flush=True)
        time.sleep(600)
""")


def test_sigkill_during_overwrite_keeps_the_old_output(tmp_path: Path) -> None:
    """A writer killed while its new output is incomplete: the old output is untouched, and the
    temporary sibling it leaves is removed by the next writer of the same output."""
    out = tmp_path / "out"
    with atomic_output_dir(out, command="synth") as tmp:
        (tmp / "a").write_text("the old output")
    before = tree_digest(out)
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKED_WRITER, str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tree_digest(out) == before
    stale = [p.name for p in tmp_path.iterdir() if p.name != "out"]
    assert len(stale) == 1 and stale[0].startswith(".out.tmp-")
    with atomic_output_dir(out, overwrite=True, command="synth") as tmp:
        (tmp / "a").write_text("the new output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "a").read_text() == "the new output"


def _kill_when(proc: subprocess.Popen[bytes], appeared: callable, what: str) -> None:
    """SIGKILL ``proc`` as soon as ``appeared()`` (polled; never a fixed delay)."""
    while not appeared():
        if proc.poll() is not None:
            pytest.fail(f"the command ended before {what}")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _cli(*args: str, temp: Path | None = None) -> subprocess.Popen[bytes]:
    """The command line in a process of its own; with ``temp``, its temporary files go there
    (a command killed with SIGKILL cannot remove them, e.g. a launch's throw-away kits)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **({"TMPDIR": str(temp)} if temp else {})}
    return subprocess.Popen([sys.executable, "-m", "crypten_fl.cli.app", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def test_extract_killed_during_overwrite_keeps_the_old_cohort(tmp_path: Path) -> None:
    mimic = write_mimic(tmp_path / "mimic")
    out = tmp_path / "cohort"
    extract(mimic, out, threads=1)
    before, inputs = tree_digest(out), tree_digest(mimic)
    proc = _cli("extract", "--mimic-dir", str(mimic), "--out", str(out), "--overwrite",
                "--threads", "1")
    # the new cohort is being written: its DuckDB database is in the temporary sibling
    _kill_when(proc, lambda: any(any(p.glob("*")) for p in tmp_path.glob(".cohort.tmp-*")),
               "it wrote anything")
    assert tree_digest(out) == before
    assert tree_digest(mimic) == inputs
    assert MARKER in before


def test_train_killed_during_overwrite_keeps_the_old_run(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    fed = tiny_federation(tmp_path_factory)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    write_marker(out, "train", ["config.json"])
    before, inputs = tree_digest(out), tree_digest(fed)
    with temp_for_killed_process() as temp:
        proc = _cli("train", "--fed", str(fed), "--out", str(out), "--overwrite", *TINY_OPTIONS,
                    temp=temp)
        # the hospital processes have started writing the new run
        _kill_when(proc, lambda: any((tmp_path / ".run.partial").glob("parties/*")),
                   "its hospital processes started")
    assert tree_digest(out) == before
    assert tree_digest(fed) == inputs
