"""Benchmark: the ledger extract streams, so its peak memory does not grow with the day's size.

What it does: starts a throwaway embedded Postgres (fsync off), fills one US-Eastern day with
100 k entries and another with 500 k (server-side `generate_series`, so seeding costs seconds),
then extracts each day in a fresh child process, three times, and reports the median rows/s and
the child's peak RSS above its baseline (after imports and connecting). Modes: `stream` is the
extract itself (COPY ... TO STDOUT as CSV, parsed by pyarrow), `rows` the way it streamed before
(a named cursor, rows fetched as Python tuples, 10 k at a time, then Arrow), side by side in one
run. For contrast it runs the non-streaming way too (`fetchall` of the whole day, then one Arrow table), whose peak grows with
the day. A child process per run keeps each peak RSS honest (`ru_maxrss` never goes down).

Run: `.venv/bin/python bench/bench_ledger_extract.py [--sizes 100000,500000] [--repeat 3]`
Numbers depend on the machine and on what else runs on it; the table prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

FIRST_DAY = date(2024, 6, 3)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(dsn: str, day: date, mode: str, batch_rows: int) -> None:
    """One measured extract; prints a JSON line."""
    import psycopg
    import pyarrow as pa

    from recon_assets.ledger import extract
    from recon_assets.timewindows import day_window

    window = day_window(day)
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT 1")
        conn.rollback()
        baseline = _rss_mb()
        t0 = time.perf_counter()
        if mode == "stream":
            rows = 0
            for batch in extract.iter_entry_batches(conn, window, batch_rows):
                rows += batch.num_rows
        elif mode == "rows":  # before: rows fetched as tuples through a named cursor
            rows = 0
            with (
                conn.transaction(),
                conn.cursor(name="bench_rows", binary=True) as cur,
            ):
                cur.itersize = batch_rows
                cur.execute(extract._SELECT, {"start": window.start, "end": window.end})
                while fetched := cur.fetchmany(batch_rows):
                    rows += extract.to_batch(fetched).num_rows
        else:  # the legacy shape: the whole day in memory, then one table
            with conn.cursor(binary=True) as cur:
                cur.execute(extract._SELECT, {"start": window.start, "end": window.end})
                everything = cur.fetchall()
            table = pa.Table.from_batches([extract.to_batch(everything)])
            rows = table.num_rows
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "baseline_mb": baseline, "peak_mb": peak}))


def _fill(conn: object, day: date, n: int) -> None:
    from recon_assets.timewindows import day_window

    w = day_window(day)
    conn.execute(  # type: ignore[attr-defined]
        """
        INSERT INTO ledger_entries (entry_type, external_ref, account, amount_minor, currency,
                                    posted_at, created_at, updated_at, source_system, description)
        SELECT 'charge', 'ch_' || md5(%(day)s || g::text), 'stripe_clearing',
               (50 + (hashint4(g) & 65535) * 3)::bigint,
               (ARRAY['USD','USD','USD','EUR','GBP','CAD','JPY','KRW'])[1 + (g %% 8)],
               to_timestamp(%(start)s + (g::float8 / %(n)s) * (%(end)s - %(start)s)),
               to_timestamp(%(start)s + (g::float8 / %(n)s) * (%(end)s - %(start)s) + 30),
               to_timestamp(%(start)s + (g::float8 / %(n)s) * (%(end)s - %(start)s) + 30),
               'bench', 'Stripe charge (bench)'
        FROM generate_series(0, %(n)s - 1) AS g
        """,
        {"day": day.isoformat(), "start": w.start, "end": w.end, "n": n},
    )


def _versions(dsn: str) -> dict[str, str]:
    import psycopg
    import pyarrow

    with psycopg.connect(dsn) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "CPU": f"{cpu} x {os.cpu_count()} (load avg {os.getloadavg()[0]:.2f} at start)",
        "RAM": f"{mem_gb:.1f} GB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "psycopg / libpq": f"{psycopg.__version__} ({psycopg.pq.__impl__}) / {psycopg.pq.version()}",
        "pyarrow": pyarrow.__version__,
        "PostgreSQL": f"{server} (embedded, fsync off)",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,500000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-rows", type=int, default=10_000)
    p.add_argument("--modes", default="stream,rows,fetchall")
    p.add_argument("--child", nargs=3, metavar=("DSN", "DAY", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        dsn, day, mode = args.child
        child(dsn, date.fromisoformat(day), mode, args.batch_rows)
        return

    import psycopg

    from recon_assets.ledger.migrations import apply_migrations
    from recon_assets.local.postgres import EmbeddedPostgres

    sizes = [int(s) for s in args.sizes.split(",")]
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="recon-bench-", dir=shm if shm.is_dir() else None))
    base.chmod(0o755)
    pg = EmbeddedPostgres(base / "pg" / "data", durable=False)
    try:
        dsn = pg.start()
        versions = _versions(dsn)
        days = {n: FIRST_DAY + timedelta(i) for i, n in enumerate(sizes)}
        with psycopg.connect(dsn, autocommit=True) as conn:
            apply_migrations(conn)
            t0 = time.perf_counter()
            for n, day in days.items():
                _fill(conn, day, n)
            conn.execute("VACUUM ANALYZE ledger_entries")
            seeded = time.perf_counter() - t0
        print(f"seeded {sum(sizes):,} entries in {seeded:.1f} s", file=sys.stderr)
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        for mode in args.modes.split(","):
            for n, day in days.items():
                for _ in range(args.repeat):
                    out = subprocess.run(
                        [sys.executable, __file__, "--batch-rows", str(args.batch_rows),
                         "--child", dsn, day.isoformat(), mode],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    assert r["rows"] == n, (r, n)
                    results.setdefault((mode, n), []).append(r)
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)

    print("\n## Machine and versions\n")
    print("| | |\n|---|---|")
    for k, v in versions.items():
        print(f"| {k} | {v} |")
    print(
        f"\n## Ledger extract of one day (median of {args.repeat}, batch_rows={args.batch_rows})\n"
    )
    print("| mode | rows | seconds | rows/s | peak RSS above baseline | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for (mode, n), rs in results.items():
        secs = statistics.median(r["seconds"] for r in rs)
        delta = statistics.median(r["peak_mb"] - r["baseline_mb"] for r in rs)
        peak = statistics.median(r["peak_mb"] for r in rs)
        print(f"| {mode} | {n:,} | {secs:.2f} | {n / secs:,.0f} | {delta:.0f} MB | {peak:.0f} MB |")


if __name__ == "__main__":
    # Run from a checkout: make `recon_assets` importable whatever the install state.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
