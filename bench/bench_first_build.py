"""The first `dbt build` of a big warehouse (issue 11's 8 M charges), optionally side by side with
another checkout's dbt project.

A first backfill ends in one `dbt build` over every charge loaded: every model and test reads
the whole raw tables once. Building 8 M charges through the emulator takes the better part of
an hour, so this bench makes them from a warehouse a backfill already loaded (a bench home of
`bench_nightly.py --homes`): its raw charges and ledger entries copied `--copies` times under
new ids (a charge id gets `_<k>`, an entry id `+ k * (max id + 1)`, the entry's charge
reference the same suffix), every model dropped. Each run builds a fresh copy of that warehouse with dbt from
dbt's own environment, by hand as a first backfill's dbt step runs (the local profile, one dbt
thread, `RECON_DUCKDB_MEMORY_LIMIT`, the run vars over every day loaded), and records the wall
time, dbt's own per-node times and the peak RSS of dbt's process tree. Runs of the checkouts
alternate, so the noise of a shared machine hits them alike.

    git worktree add /tmp/before <rev>
    .venv/bin/python bench/bench_first_build.py --home /var/tmp/recon-bench/h540 \
        --copies 6 --runs 3 --against /tmp/before/dbt_project        # ~15 min

The 540-day home holds 1.35 M charges, so 6 copies are 8.2 M, the issue's 18 months x 15 k.
Models that need more memory than this checkout's can be given it (`--against-limit 1GB`), so
their time is compared with what they needed rather than with where they stop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from bench_nightly import TreeRss, machine

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_BUILT = ("staging", "intermediate", "marts")


def multiply(source: Path, target: Path, copies: int) -> tuple[int, int, dict[str, object]]:
    """`target`: `source`'s raw tables with `copies` copies of every charge and ledger entry,
    nothing built. Returns the charges, the entries and the dbt run vars over every day."""
    shutil.copyfile(source, target)
    con = duckdb.connect(str(target))
    try:
        con.execute("set memory_limit = '4GB'")

        def columns(table: str) -> list[str]:
            return [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'raw' and table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
            ]

        # Ledger ids are big and sparse (the local ledger's start near 10^12): a copy's ids must
        # clear every original one, or copies become versions of other entries.
        stride = con.execute("select max(id) + 1 from raw.ledger_entries").fetchone()[0]
        ids = (
            "select (select count(distinct id) from raw.stripe_charges), "
            "(select count(distinct id) from raw.ledger_entries)"
        )
        before = con.execute(ids).fetchone()
        renamed = {
            "stripe_charges": {"id": "id || '_' || k"},
            "ledger_entries": {
                "id": f"id + k * {stride}",
                "external_ref": "external_ref || '_' || k",
            },
        }
        for table, exprs in renamed.items():
            cols = ", ".join(exprs.get(c, f'"{c}"') for c in columns(table))
            con.execute(
                f"insert into raw.{table} select {cols} "
                f"from raw.{table}, range(1, {copies}) as r(k)"
            )
        after = con.execute(ids).fetchone()
        if after != tuple(n * copies for n in before):
            raise SystemExit(f"the copies' ids collided: {before} x {copies} -> {after}")
        for schema in SCHEMAS_BUILT:
            con.execute(f"drop schema if exists {schema} cascade")
        charges, entries = after
        first, last = con.execute(
            "select min(_partition_date), max(_partition_date) from raw.stripe_charges"
        ).fetchone()
        con.execute("checkpoint")
    finally:
        con.close()
    from recon_assets.warehouse.dbt_vars import build_dbt_vars

    et = ZoneInfo("America/New_York")
    start = datetime(first.year, first.month, first.day, tzinfo=et)
    end = datetime(last.year, last.month, last.day, tzinfo=et) + timedelta(days=1)
    # 3: RECON_TOLERANCE_DAYS's default (recon_assets.config), as a first backfill runs it
    dbt_vars = build_dbt_vars(start, end, 3, run_id="bench-first-build")
    return charges, entries, dbt_vars


def dbt_build_command(
    project: Path, db: Path, work: Path, dbt_vars: dict[str, object], limit: str
) -> tuple[list[str], dict[str, str]]:
    """`dbt build` of `db` with `project`'s models as a run's dbt step runs it (the local
    profile, `limit` for DuckDB, the run vars in the environment), artifacts and logs in
    `work`: the command and its environment."""
    from recon_assets.defs.dbt_assets import default_dbt_executable
    from recon_assets.warehouse.dbt_vars import RUN_VARS_ENV

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "DBT_"))},
        "RECON_DUCKDB_PATH": str(db),
        "RECON_DUCKDB_MEMORY_LIMIT": limit,
        RUN_VARS_ENV: json.dumps(dbt_vars),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt = Path(default_dbt_executable()).with_name("dbt")
    cmd = [str(dbt), "build", "--project-dir", str(project), "--profiles-dir", str(project)]
    cmd += ["--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    return cmd, env


def build(
    project: Path, warehouse: Path, work: Path, dbt_vars: dict[str, object], limit: str
) -> dict[str, object]:
    """One first `dbt build` of a fresh copy of `warehouse` with `project`'s models."""
    db = work / "warehouse.duckdb"
    shutil.copyfile(warehouse, db)
    shutil.rmtree(work / "warehouse.duckdb.tmp", ignore_errors=True)
    target = work / "target"
    shutil.rmtree(target, ignore_errors=True)
    cmd, env = dbt_build_command(project, db, work, dbt_vars, limit)
    t = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    rss = TreeRss(proc.pid)
    out, _ = proc.communicate()
    peak = rss.stop()
    wall = time.perf_counter() - t
    results = json.loads((target / "run_results.json").read_text())
    nodes = {r["unique_id"].split(".")[2]: r["execution_time"] for r in results["results"]}
    failed = [r["unique_id"] for r in results["results"] if r["status"] in ("error", "fail")]
    if proc.returncode != 0 and not failed:
        raise SystemExit(f"dbt build failed:\n{out[-3000:]}")
    return {"wall": wall, "peak": peak, "nodes": nodes, "failed": failed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="a bench home with a warehouse")
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", default="256MB", help="RECON_DUCKDB_MEMORY_LIMIT for dbt")
    ap.add_argument("--against", type=Path, help="another checkout's dbt_project directory")
    ap.add_argument(
        "--against-limit",
        help="the memory limit for --against's builds (default --limit), e.g. the 1GB the "
        "operations guide gave a first build before its models fitted 256MB",
    )
    ap.add_argument("--top", type=int, default=6, help="models and tests to list by time")
    args = ap.parse_args()

    print(machine())
    projects = {"this checkout": (ROOT / "dbt_project", args.limit)}
    if args.against:
        projects[f"{args.against}"] = (args.against.resolve(), args.against_limit or args.limit)
    with tempfile.TemporaryDirectory(prefix="bench-first-build-") as tmp:
        big = Path(tmp) / "multiplied.duckdb"
        t = time.perf_counter()
        charges, entries, dbt_vars = multiply(args.home / "warehouse.duckdb", big, args.copies)
        print(
            f"{charges:,} charges, {entries:,} ledger entries ({args.copies} copies of "
            f"{args.home}) in {time.perf_counter() - t:.0f} s; vars {dbt_vars}"
        )
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in projects}
        for i in range(args.runs):
            for name, (project, limit) in projects.items():
                work = Path(tmp) / f"run-{len(runs[name])}-{list(projects).index(name)}"
                work.mkdir()
                r = build(project, big, work, dbt_vars, limit)
                runs[name].append(r)
                state = f"FAILED {', '.join(r['failed'])}" if r["failed"] else "ok"
                print(
                    f"  run {i + 1}, {name}: {r['wall']:.1f} s, "
                    f"peak {r['peak'] / 2**20:.0f} MB, {state}"
                )
                shutil.rmtree(work)

    print(f"\nFirst dbt build of {charges:,} charges, {args.runs} run(s) each:")
    for name, rs in runs.items():
        walls = [r["wall"] for r in rs]
        peaks = [r["peak"] / 2**20 for r in rs]
        print(
            f"- {name} at {projects[name][1]}: "
            f"{statistics.median(walls):.1f} s ({min(walls):.1f}..{max(walls):.1f}), "
            f"peak {min(peaks):.0f}-{max(peaks):.0f} MB, "
            f"{sum(1 for r in rs if r['failed'])} failed"
        )
        top = sorted(
            rs[0]["nodes"], key=lambda n: -statistics.median(r["nodes"].get(n, 0) for r in rs)
        )
        for node in top[: args.top]:
            xs = [r["nodes"].get(node, 0.0) for r in rs]
            print(f"    {node}: {statistics.median(xs):.1f} s ({min(xs):.1f}..{max(xs):.1f})")
    if args.against:
        if any(r["failed"] for rs in runs.values() for r in rs):
            # a failed build stops early: its time is not the build's
            print("\nno ratio: a build failed (its time is where it stopped)")
        else:
            this, other = (statistics.median(r["wall"] for r in runs[n]) for n in projects)
            print(f"\n{args.against} / this checkout: {other / this:.2f}x")
    print(f"\n{machine()}")


if __name__ == "__main__":
    main()
