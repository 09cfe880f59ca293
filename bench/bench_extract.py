"""Benchmark `crypten-fl extract` on synthetic MIMIC-IV at fractions of the v3.1 scale.

For each scale (default 1 %, 3 %, 10 % of v3.1's 94,458 ICU stays; synth makes ~1.25 stays per
patient) the data is generated once with `crypten-fl synth` and cached under bench/out/data/.
`crypten-fl extract` then runs in a subprocess: wall time and peak RSS of its process tree
(psutil polling every 50 ms, cross-checked with the child's own ru_maxrss from os.wait4).
Prints rows/s over chartevents + labevents, a least-squares linear projection of time and
peak RSS to full v3.1 scale, and the machine; writes everything as JSON to bench/out/.

With ``--format both`` (the default) every scale is synthesised twice with the same seed, as
CSVs (`synth`, extracted with `--mimic-dir`) and as MEDS (`synth --format meds`, extracted with
`--meds-dir`): the same patients, so the two paths are compared side by side (MEDS/CSV ratios)
and each gets its own projection.

    .venv/bin/python bench/bench_extract.py                      # 1 %, 3 %, 10 %, CSV and MEDS
    .venv/bin/python bench/bench_extract.py --scales 0.01 --format csv --memory-limit 3GB
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.machine import describe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CLI = [sys.executable, "-m", "crypten_fl.cli.app"]
FULL_STAYS = 94_458  # MIMIC-IV v3.1 icustays
FULL_ROWS = {"chartevents": 432_997_491, "labevents": 158_374_764}  # v3.1
STAYS_PER_PATIENT = 1.25
FORMATS = ("csv", "meds")
INPUT_OPTION = {"csv": "--mimic-dir", "meds": "--meds-dir"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="0.01,0.03,0.10", help="fractions of v3.1 stays")
    parser.add_argument("--memory-limit", default=None, help="passed to extract (default: its)")
    parser.add_argument("--threads", type=int, default=None, help="passed to extract")
    parser.add_argument("--seed", type=int, default=0, help="synth seed")
    parser.add_argument(
        "--format", default="both", choices=["csv", "meds", "both"],
        help="input to extract: CSVs (--mimic-dir), MEDS (--meds-dir) or both side by side",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per scale; the fastest is kept (shared CPUs)"
    )
    parser.add_argument("--regenerate", action="store_true", help="ignore cached synth data")
    parser.add_argument("--generate-only", action="store_true", help="only make the data")
    parser.add_argument(
        "--full-scale-sql",
        default=None,
        metavar="LIMITS",
        help="instead: run the real vitals.sql and timeseries.sql on generated full-v3.1-size "
        "inputs at these memory limits (e.g. 8GB,3GB) and report time and peak RSS",
    )
    parser.add_argument("--full-scale-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.full_scale_child:
        full_scale_child(args.full_scale_child)
        return
    if args.full_scale_sql:
        full_scale_sql(args.full_scale_sql.split(","))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    formats = FORMATS if args.format == "both" else (args.format,)
    runs = []
    for scale in (float(s) for s in args.scales.split(",")):
        datas = {fmt: ensure_data(scale, args.seed, args.regenerate, fmt) for fmt in formats}
        if args.generate_only:
            continue
        tries: dict[str, list[dict[str, Any]]] = {fmt: [] for fmt in formats}
        for _ in range(args.repeat):  # interleaved, so both formats see the same load
            for fmt, data in datas.items():
                tries[fmt].append(time_extract(data, fmt, args.memory_limit, args.threads))
        for fmt, data in datas.items():
            run = min(tries[fmt], key=lambda r: r["wall_seconds"])
            run["all_wall_seconds"] = [r["wall_seconds"] for r in tries[fmt]]
            run.update(format=fmt, scale=scale, data=str(data.relative_to(ROOT)),
                       rows=data_rows(data))
            run["rows_per_second"] = round(sum(run["rows"].values()) / run["wall_seconds"])
            runs.append(run)
            print_run(run)
    if args.generate_only:
        return
    projection = {fmt: project([r for r in runs if r["format"] == fmt]) for fmt in formats}
    report = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe(),
        "runs": runs,
        "projection_full_v3_1": projection,
    }
    for fmt, p in projection.items():
        print_projection(fmt, p)
    if len(formats) == 2:
        report["meds_vs_csv"] = compare(runs, projection)
        print_comparison(report["meds_vs_csv"])
    print_machine(report["machine"])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"bench_extract-{stamp}.json", "bench_extract.json"):
        (OUT / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT / 'bench_extract.json'}")


def ensure_data(scale: float, seed: int, regenerate: bool, fmt: str = "csv") -> Path:
    """Synthetic MIMIC for ``scale`` in ``fmt`` (cached); generation time is recorded with it."""
    patients = round(FULL_STAYS * scale / STAYS_PER_PATIENT)
    data = OUT / "data" / f"synth-p{patients}-s{seed}{'-meds' if fmt == 'meds' else ''}"
    if (data / "bench_rows.json").exists() and not regenerate:
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {patients} patients ({scale:.0%} of v3.1, {fmt}) into {data} ...",
          flush=True)
    start = time.perf_counter()
    cmd = [*CLI, "synth", "--patients", str(patients), "--seed", str(seed), "--out", str(data),
           "--format", fmt]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    generate_seconds = round(time.perf_counter() - start, 1)
    if fmt == "meds":
        rows = count_meds_rows(data)
    else:
        summary = data / "synth_summary.json"  # synth records its row counts; else count them
        known = json.loads(summary.read_text()).get("rows", {}) if summary.exists() else {}
        rows = {name: known.get(name) or count_rows(data, name)
                for name in (*FULL_ROWS, "icustays")}
    (data / "bench_rows.json").write_text(
        json.dumps({"rows": rows, "generate_seconds": generate_seconds}, indent=2)
    )
    return data


def count_rows(data: Path, table: str) -> int:
    """Data rows of a table (.csv.gz or .csv), counted once at generation time."""
    path = next(data.glob(f"*/{table}.csv*"))
    con = duckdb.connect()
    (count,) = con.execute(
        "SELECT count(*) FROM read_csv(?, header = true, all_varchar = true)", [str(path)]
    ).fetchall()[0]
    return int(count)


def count_meds_rows(data: Path) -> dict[str, int]:
    """The CSV tables' row counts of a MEDS release: LAB//<itemid>// events are labevents
    below itemid 220000 and chartevents from it (as sql/meds/codes.csv maps them)."""
    con = duckdb.connect()
    chart, lab, stays = con.execute("""
        SELECT count(*) FILTER (item >= 220000), count(*) FILTER (item < 220000),
            count(*) FILTER (code LIKE 'ICU_ADMISSION//%')
        FROM (SELECT code, CASE WHEN code LIKE 'LAB//%'
                                THEN TRY_CAST(split_part(code, '//', 2) AS INT) END AS item
              FROM read_parquet(?))""", [str(data / "data" / "**" / "*.parquet")]).fetchall()[0]
    return {"chartevents": chart, "labevents": lab, "icustays": stays}


def data_rows(data: Path) -> dict[str, int]:
    rows = json.loads((data / "bench_rows.json").read_text())["rows"]
    return {name: rows[name] for name in FULL_ROWS}


def time_extract(
    data: Path, fmt: str, memory_limit: str | None, threads: int | None
) -> dict[str, Any]:
    """Run extract on ``data`` (CSV or MEDS) in a subprocess; wall time, peak RSS of the process
    tree and its summary."""
    out = OUT / "cohort"
    cmd = [*CLI, "extract", INPUT_OPTION[fmt], str(data), "--out", str(out), "--overwrite"]
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    if threads:
        cmd += ["--threads", str(threads)]
    run = measure(cmd)
    manifest = json.loads((out / "manifest.json").read_text())
    run.update(
        stays=manifest["counts"]["stays"],
        timeseries_rows=manifest["counts"]["timeseries_rows"],
        step_seconds=manifest["step_seconds"],
    )
    return run


def measure(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd``; wall seconds, peak RSS of its process tree (MB), CPU seconds, load."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        peak = {"rss": 0}
        done = threading.Event()
        watcher = threading.Thread(target=_poll_rss, args=(proc.pid, peak, done), daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip()[-2000:]
            raise SystemExit(f"{' '.join(cmd[2:4])} failed ({proc.returncode}): {tail}")
    return {
        "command": " ".join(cmd[2:]),
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(max(peak["rss"], usage.ru_maxrss * 1024) / 2**20),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _poll_rss(pid: int, peak: dict[str, int], done: threading.Event) -> None:
    try:
        root = psutil.Process(pid)
        while not done.is_set():
            procs = [root, *root.children(recursive=True)]
            total = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            peak["rss"] = max(peak["rss"], total)
            done.wait(0.05)
    except psutil.Error:
        return


def project(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Least-squares line through (rows, seconds) and (rows, RSS), evaluated at v3.1 scale."""
    full = sum(FULL_ROWS.values())
    xs = [sum(r["rows"].values()) for r in runs]

    def fit(ys: list[float]) -> float:
        if len(xs) == 1:
            return ys[0] * full / xs[0]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
        slope /= sum((x - mx) ** 2 for x in xs)
        return my + slope * (full - mx)

    return {
        "rows": full,
        "wall_seconds": round(fit([r["wall_seconds"] for r in runs])),
        "wall_seconds_rate_only": round(full / max(r["rows_per_second"] for r in runs)),
        "peak_rss_mb_linear": round(fit([r["peak_rss_mb"] for r in runs])),
    }


# Full-scale operator test: the memory-heavy steps (event de-duplication in vitals.sql, the grid
# widening in timeseries.sql) on inputs of full v3.1 size, generated inside DuckDB (no CSV):
# 480 in-window vital-sign rows per stay, 45 M rows (our estimate for MIMIC-IV: ~70 M vital-sign
# rows in chartevents, a bit more than half in the first 48 h of first stays).
FULL_SCALE_EVENTS_PER_STAY = 480


def full_scale_sql(limits: list[str]) -> None:
    results = []
    for limit in limits:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--full-scale-child", limit]
        run = measure(cmd)
        run["memory_limit"] = limit
        child = OUT / "full_scale_child.json"
        run.update(json.loads(child.read_text()))
        child.unlink()
        results.append(run)
        print(
            f"full-scale SQL at --memory-limit {limit}: vitals.sql {run['vitals_seconds']} s "
            f"({run['events']:,} events), timeseries.sql {run['timeseries_seconds']} s "
            f"({run['grid_rows']:,} rows), peak RSS {run['peak_rss_mb']:,} MB",
            flush=True,
        )
    report = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe(),
        "full_scale_sql": results,
    }
    (OUT / "bench_extract_full_scale_sql.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT / 'bench_extract_full_scale_sql.json'}")


def full_scale_child(memory_limit: str) -> None:
    from crypten_fl import sql
    from crypten_fl.mimic_etl.extract import duck
    from crypten_fl.mimic_etl.extract.definitions import load_features, load_labels, template_values

    work = OUT / "full_scale_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    con = duck.connect(work / "work.duckdb", work / "spill", None, memory_limit)
    stays, per_stay = FULL_STAYS, FULL_SCALE_EVENTS_PER_STAY
    duck.set_variables(con, {
        "hours": 48, "bin_hours": 2, "n_bins": 24, "min_age": 18, "min_los_hours": None,
        **{name: str(path) for name, path in sql.DATA_FILES.items()},
    })
    files = {f.name: f for f in sql.load()}
    con.execute(files["macros"].text)
    con.execute(f"CREATE TABLE feature_items AS {files['feature_items'].text}")
    con.execute(f"""CREATE TABLE stay_windows AS
        SELECT 30000000 + s AS stay_id, TIMESTAMP '2150-01-01' + to_hours(s * 100) AS intime,
            TIMESTAMP '2150-01-01' + to_hours(s * 100 + 48) AS window_end, true AS eligible
        FROM range({stays}) AS t(s)""")
    items = [220045, 220277, 220210, 220179, 220180, 220181, 220050, 220051, 220052, 223761,
             220739, 223900, 223901, 225664, 223835]
    con.execute(f"""CREATE VIEW chartevents AS
        SELECT 30000000 + i // {per_stay} AS stay_id,
            {items}[CAST(1 + i % {len(items)} AS BIGINT)] AS itemid,
            TIMESTAMP '2150-01-01' + to_hours(i // {per_stay} * 100)
                + to_seconds(CAST(hash(i) % 172800 AS BIGINT)) AS charttime,
            CAST(1 + hash(i * 7) % 100 AS DOUBLE) AS valuenum
        FROM range({stays * per_stay}) AS t(i)""")
    start = time.perf_counter()
    con.execute(f"CREATE TABLE vitals AS {files['vitals'].text}")
    vitals_seconds = round(time.perf_counter() - start, 1)
    features = load_features()
    long_tables = (("labs", "labs", 5), ("urine", "urine", 1), ("medications", "meds", 4))
    for table, group, fill in long_tables:  # 1 row in `fill` of the (stay, bin, feature) grid
        names = [f.name for f in features if f.group == group]
        con.execute(f"""CREATE TABLE {table} AS
            SELECT 30000000 + i // {24 * len(names)} AS stay_id,
                CAST(i // {len(names)} % 24 AS SMALLINT) AS bin,
                {names}[CAST(1 + i % {len(names)} AS BIGINT)] AS feature, 1.0 AS value
            FROM range({stays * 24 * len(names)}) AS t(i) WHERE hash(i) % {fill} = 0""")
    con.execute("CREATE TABLE cohort AS SELECT * FROM stay_windows")
    body = sql.render(files["timeseries"].text, template_values(features, load_labels()))
    start = time.perf_counter()
    con.execute(f"COPY ({body}) TO {sql.literal(str(work / 'timeseries.parquet'))} "
                "(FORMAT parquet)")
    timeseries_seconds = round(time.perf_counter() - start, 1)
    (events,) = con.execute("SELECT count(*) FROM chartevents").fetchall()[0]
    (rows,) = con.execute(
        f"SELECT count(*) FROM read_parquet({sql.literal(str(work / 'timeseries.parquet'))})"
    ).fetchall()[0]
    con.close()
    shutil.rmtree(work, ignore_errors=True)
    (OUT / "full_scale_child.json").write_text(json.dumps({
        "vitals_seconds": vitals_seconds, "timeseries_seconds": timeseries_seconds,
        "events": events, "grid_rows": rows,
    }))


def compare(runs: list[dict[str, Any]], projection: dict[str, Any]) -> list[dict[str, Any]]:
    """Per scale and projected: both formats' wall time and peak RSS, and MEDS / CSV."""
    by = {(r["format"], r["scale"]): r for r in runs}
    rows = [{"scale": scale, **{f"{fmt}_{key}": by[fmt, scale][key] for fmt in FORMATS
                                for key in ("wall_seconds", "peak_rss_mb")}}
            for scale in dict.fromkeys(r["scale"] for r in runs)]
    rows.append({"scale": "full (projected)",
                 **{f"{fmt}_{key}": projection[fmt][proj] for fmt in FORMATS
                    for key, proj in (("wall_seconds", "wall_seconds"),
                                      ("peak_rss_mb", "peak_rss_mb_linear"))}})
    for row in rows:
        for key in ("wall_seconds", "peak_rss_mb"):
            row[f"ratio_{key}"] = round(row[f"meds_{key}"] / row[f"csv_{key}"], 2)
    return rows


def print_run(run: dict[str, Any]) -> None:
    rows = sum(run["rows"].values())
    print(
        f"{run['format']:>4} scale {run['scale'] * 100:>4g} %: {run['stays']:>6,} stays, "
        f"{rows:>12,} chart+lab rows, {run['wall_seconds']:>7.1f} s, "
        f"{run['rows_per_second']:>10,} rows/s, peak RSS {run['peak_rss_mb']:>6,} MB",
        flush=True,
    )


def print_projection(fmt: str, p: dict[str, Any]) -> None:
    print(
        f"{fmt}: projected full v3.1 ({p['rows']:,} rows): {p['wall_seconds']:,} s "
        f"({p['wall_seconds'] / 60:.1f} min; best rate alone: {p['wall_seconds_rate_only']} s), "
        f"peak RSS (linear) {p['peak_rss_mb_linear']:,} MB"
    )


def print_comparison(rows: list[dict[str, Any]]) -> None:
    print(f"{'scale':>16} | {'CSV s':>7} {'MEDS s':>7} {'ratio':>5} | "
          f"{'CSV MB':>7} {'MEDS MB':>7} {'ratio':>5}")
    for r in rows:
        scale = r["scale"] if isinstance(r["scale"], str) else f"{r['scale'] * 100:g} %"
        print(f"{scale:>16} | {r['csv_wall_seconds']:>7.1f} {r['meds_wall_seconds']:>7.1f} "
              f"{r['ratio_wall_seconds']:>5.2f} | {r['csv_peak_rss_mb']:>7,} "
              f"{r['meds_peak_rss_mb']:>7,} {r['ratio_peak_rss_mb']:>5.2f}")


def print_machine(m: dict[str, Any]) -> None:
    print(
        f"machine: {m['platform']}, {m['cpus']} CPUs, {m['ram_gb']} GB RAM, "
        f"Python {m['python']}, DuckDB {m['duckdb']}"
    )


if __name__ == "__main__":
    main()
