"""Counts of the hostile-input suite per stage: run it, tally pytest's JUnit XML, print a table.

    .venv/bin/python tests/helpers/fuzz_report.py            # the default run (not slow)
    .venv/bin/python tests/helpers/fuzz_report.py --all      # slow cases included
    .venv/bin/python tests/helpers/fuzz_report.py --all --write docs/reliability.md

Every tests/test_fuzz_<stage>.py is a stage (test_fuzz_harness.py tests the harness itself and is
not counted); with ``--write`` the table replaces the block between the ``fuzz-counts`` markers
of the given file.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- fuzz-counts:begin -->", "<!-- fuzz-counts:end -->"
COLUMNS = ("passed", "known defect (xfail)", "skipped", "failed")


def run_suite(include_slow: bool) -> tuple[Path, float]:
    """Run the fuzz test files; returns the JUnit XML path and the wall time in seconds."""
    xml = Path(tempfile.mkdtemp(prefix="fuzz-report-")) / "junit.xml"
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_fuzz_*.py"))
    marker = "" if include_slow else "not slow"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", marker, f"--junitxml={xml}",
                    *files], cwd=REPO, check=False)
    return xml, time.perf_counter() - start


def tally(xml: Path) -> dict[str, collections.Counter[str]]:
    """Outcome counts per stage (and per test function when a file has several)."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case in ET.parse(xml).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        stage = module.removeprefix("test_fuzz_")
        if stage == "harness":  # the harness's own tests, not hostile inputs
            continue
        function = re.sub(r"\[.*", "", case.get("name", ""))
        if function != f"test_{stage}":
            stage = f"{stage}: {function.removeprefix('test_').replace('_', ' ')}"
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif skipped is not None:
            xfail = skipped.get("type") == "pytest.xfail"
            outcome = "known defect (xfail)" if xfail else "skipped"
        else:
            outcome = "passed"
        counts[stage][outcome] += 1
    return dict(sorted(counts.items()))


def table(counts: dict[str, collections.Counter[str]]) -> str:
    """Markdown: inputs tried and each outcome per stage, with a total row."""
    lines = ["| stage | inputs tried | " + " | ".join(COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]
    total: collections.Counter[str] = collections.Counter()
    for stage, c in counts.items():
        total.update(c)
        lines.append(f"| {stage} | {sum(c.values())} | "
                     + " | ".join(str(c[k]) for k in COLUMNS) + " |")
    lines.append(f"| **total** | **{sum(total.values())}** | "
                 + " | ".join(f"**{total[k]}**" for k in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="include the cases marked slow")
    parser.add_argument("--write", type=Path, help="replace the fuzz-counts block of this file")
    args = parser.parse_args()
    xml, seconds = run_suite(args.all)
    counts = tally(xml)
    command = "tests/helpers/fuzz_report.py" + (" --all" if args.all else "")
    report = (f"{table(counts)}\n\n`.venv/bin/python {command}`, "
              f"{datetime.date.today().isoformat()}, {seconds:.0f} s wall time on this machine.")
    print(report)
    if args.write:
        text = args.write.read_text()
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        args.write.write_text(f"{head}{BEGIN}\n{report}\n{END}{tail}")


if __name__ == "__main__":
    main()
