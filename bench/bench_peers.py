"""recon's pull -> stage -> DuckDB against dlt (three modes) and the legacy job, same charges, one run.

Every case loads the same day of the project's Stripe emulator (103,436 charges at 100 k/day,
frozen, so every case gets byte-identical pages) into a fresh DuckDB file, each in its own fresh
process, and the cases run interleaved so the machine's noise hits them alike:

- recon: `pull_charges` through the stripe SDK into a local stage (Parquet + manifests, the
  drift, window and validation checks), then `DuckDBLoader.load` (delete-then-insert of the
  day, counts checked inside the transaction) under the default DuckDB memory limit.
- dlt fed Arrow by hand: pages fetched with `requests` + `orjson`, each page turned into a
  `pyarrow.Table` of the same 20 columns recon stages, yielded to a `dlt.resource`, loaded by
  `pipeline.run` into DuckDB. This is the fastest way dlt offers.
- dlt, parquet mode: the same pages' dicts yielded as they come, `loader_file_format="parquet"`.
- dlt, default: the same dicts, dlt's default file format (it normalises every nested object
  and list into child tables).
- legacy: what the job recon replaces did, per object: `pandas.json_normalize`, `pd.concat` onto
  the frame so far, then one `INSERT` + commit per row. It is far too slow for the whole day, so
  it runs on the first `--legacy-charges` charges and is extrapolated LINEARLY to the day and to
  8 M. Its concat is quadratic, so the real legacy time is longer: the ratio is a lower bound.

All fetchers use the same 8 windows of the day and the same number of threads (`--threads`,
default 2, the local default of RECON_STRIPE_CONCURRENCY). The dlt cases use dlt's default
`append` write disposition into an empty dataset, its cheapest path; recon replaces the day,
which is what makes its re-runs safe.

Peak memory is the whole process tree of the case (the fresh process and anything it starts),
sampled every 50 ms by the parent; the emulator is not in it. Each case's warehouse is checked
afterwards: the row count and the sum of `amount` must equal the emulator's, so every case
loaded the same charges.

    .venv/bin/pip install -e '.[bench]'                      # dlt, pandas, matplotlib
    .venv/bin/python bench/bench_peers.py                     # ~15 min: 3 runs, 2 of dlt default
    .venv/bin/python bench/bench_peers.py --quick             # ~5 min: 1 run each
    .venv/bin/python bench/bench_peers.py --markdown docs/benchmarks.md
    git worktree add /tmp/before <commit>    # recon then and now, side by side in one run:
    .venv/bin/python bench/bench_peers.py --only dlt_arrow --against /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
# the checkout whose recon_assets a child runs: this one, or --against's for "recon_before"
CODE = Path(os.environ.get("RECON_BENCH_CODE", ROOT))
if str(CODE) not in sys.path:
    sys.path.insert(0, str(CODE))
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from bench_emulator import cpu_model  # noqa: E402
from bench_env import production_env  # noqa: E402
from bench_nightly import TreeRss, write_section  # noqa: E402
from bench_stripe_pull import DAY_100K, WINDOWS_PER_DAY, Emulator  # noqa: E402

TARGET_CHARGES = 8_000_000
CASES = {
    "recon": "recon: pull -> stage -> DuckDB",
    "recon_before": "recon at --against (before)",
    "dlt_arrow": "dlt fed Arrow by hand",
    "dlt_parquet": "dlt, parquet mode",
    "dlt_default": "dlt, default",
    "legacy": "legacy (json_normalize, concat, row INSERT)",
}


# --------------------------------------------------------------------------------------------
# child side: one case per fresh process
# --------------------------------------------------------------------------------------------


def windows() -> list[tuple[int, int]]:
    from recon_assets.timewindows import day_window, split_window

    return [(w.start, w.end) for w in split_window(day_window(DAY_100K), WINDOWS_PER_DAY)]


def fetch_pages(base_url: str, threads: int, limit: int | None = None) -> Iterator[list[dict]]:
    """Every page of the day's windows as parsed dicts, `threads` windows at a time, through a
    bounded queue (memory stays flat whatever the consumer's pace). Stops after `limit`
    charges when given."""
    import orjson  # dlt's own JSON library: the peers parse as fast as recon does
    import requests

    from recon_assets.config import LOCAL_STRIPE_API_KEY

    headers = {"Authorization": f"Bearer {LOCAL_STRIPE_API_KEY}"}
    q: queue.Queue[list[dict] | None] = queue.Queue(maxsize=4 * threads)
    stop = threading.Event()

    def one_window(w: tuple[int, int]) -> None:
        with requests.Session() as s:
            params: dict[str, Any] = {"limit": 100, "created[gte]": w[0], "created[lt]": w[1]}
            while not stop.is_set():
                r = s.get(f"{base_url}/v1/charges", params=params, headers=headers, timeout=60)
                r.raise_for_status()
                page = orjson.loads(r.content)
                if page["data"]:
                    q.put(page["data"])
                if not page["has_more"]:
                    return
                params["starting_after"] = page["data"][-1]["id"]

    def run_all() -> None:
        try:
            with ThreadPoolExecutor(threads) as ex:
                list(ex.map(one_window, windows()))
        finally:
            q.put(None)

    producer = threading.Thread(target=run_all, daemon=True)
    producer.start()
    got = 0
    while (items := q.get()) is not None:
        if limit is not None and got >= limit:
            stop.set()
            continue
        if limit is not None:
            items = items[: limit - got]
        got += len(items)
        yield items
    producer.join()


def arrow_page(items: list[dict]) -> Any:
    """One page as the Arrow table recon stages (its 20 columns), written the plain way."""
    import pyarrow as pa

    def col(name: str) -> list[Any]:
        return [o.get(name) for o in items]

    return pa.table(
        {
            "id": pa.array(col("id"), pa.string()),
            "created": pa.array([o["created"] * 1_000_000 for o in items], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "livemode": pa.array(col("livemode"), pa.bool_()),
            "status": pa.array(col("status"), pa.string()),
            "paid": pa.array(col("paid"), pa.bool_()),
            "captured": pa.array(col("captured"), pa.bool_()),
            "refunded": pa.array(col("refunded"), pa.bool_()),
            "disputed": pa.array(col("disputed"), pa.bool_()),
            "currency": pa.array(col("currency"), pa.string()),
            "amount": pa.array(col("amount"), pa.int64()),
            "amount_captured": pa.array(col("amount_captured"), pa.int64()),
            "amount_refunded": pa.array(col("amount_refunded"), pa.int64()),
            "balance_transaction": pa.array(col("balance_transaction"), pa.string()),
            "customer": pa.array(col("customer"), pa.string()),
            "payment_intent": pa.array(col("payment_intent"), pa.string()),
            "failure_code": pa.array(col("failure_code"), pa.string()),
            "failure_message": pa.array(col("failure_message"), pa.string()),
            "outcome_type": pa.array([(o.get("outcome") or {}).get("type") for o in items]),
            "description": pa.array(col("description"), pa.string()),
            "metadata": pa.array([json.dumps(o.get("metadata") or {}) for o in items]),
        }
    )


def child_recon(base_url: str, work: Path, threads: int) -> dict[str, Any]:
    from recon_assets.config import DUCKDB_MEMORY_LIMIT, LOCAL_STRIPE_API_KEY
    from recon_assets.stage.store import LocalStageStore
    from recon_assets.stripe.client import ChargesClient
    from recon_assets.stripe.pull import pull_charges
    from recon_assets.stripe.ratelimit import RateLimiter
    from recon_assets.warehouse.duckdb_loader import DuckDBLoader

    client = ChargesClient(
        LOCAL_STRIPE_API_KEY, api_base=base_url, rate_limiter=RateLimiter(10_000.0), seed=1
    )
    store = LocalStageStore(work / "stage")
    db = work / "recon.duckdb"
    t0 = time.perf_counter()
    pulled = pull_charges(
        client, store, [DAY_100K], "bench-peers", windows_per_day=WINDOWS_PER_DAY,
        concurrency=threads,
    )  # fmt: skip
    t1 = time.perf_counter()
    loaded = DuckDBLoader(db, memory_limit=DUCKDB_MEMORY_LIMIT).load(
        store, "stripe_charges", [DAY_100K], run_id="bench-peers"
    )
    wall = time.perf_counter() - t0
    assert pulled.quarantined == 0 and loaded.loaded_total == pulled.fetched
    return {"wall_s": wall, "load_s": t0 + wall - t1, **warehouse_totals(db, "raw.stripe_charges")}


def child_dlt(base_url: str, work: Path, threads: int, mode: str) -> dict[str, Any]:
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{mode}",
        destination=dlt.destinations.duckdb(str(work / "dlt.duckdb")),
        dataset_name="raw",
        pipelines_dir=str(work / "pipelines"),
    )
    t0 = time.perf_counter()
    pages = fetch_pages(base_url, threads)
    if mode == "dlt_arrow":
        data = dlt.resource((arrow_page(p) for p in pages), name="charges")
        pipeline.run(data)
    elif mode == "dlt_parquet":
        pipeline.run(dlt.resource(pages, name="charges"), loader_file_format="parquet")
    else:
        pipeline.run(dlt.resource(pages, name="charges"))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, **warehouse_totals(work / "dlt.duckdb", "raw.charges")}


def child_legacy(base_url: str, work: Path, threads: int, limit: int) -> dict[str, Any]:
    """The replaced job's shape: a frame grown one normalised object at a time, then one INSERT
    and one commit per row."""
    import duckdb
    import pandas as pd

    db = work / "legacy.duckdb"
    t0 = time.perf_counter()
    df = pd.DataFrame()
    for items in fetch_pages(base_url, threads, limit=limit):
        for obj in items:
            df = pd.concat([df, pd.json_normalize(obj)], ignore_index=True)
    con = duckdb.connect(str(db))
    cols = list(df.columns)
    con.execute(
        "CREATE TABLE charges (" + ", ".join(f'"{c}" VARCHAR' for c in cols) + ")"
    )  # fmt: skip
    sql = f"INSERT INTO charges VALUES ({', '.join('?' for _ in cols)})"
    for row in df.itertuples(index=False):
        con.execute("BEGIN")
        con.execute(sql, [None if v is None or v != v else str(v) for v in row])
        con.execute("COMMIT")
    con.close()
    wall = time.perf_counter() - t0
    return {"wall_s": wall, **warehouse_totals(db, "charges", amount="CAST(amount AS BIGINT)")}


def warehouse_totals(db: Path, table: str, amount: str = "amount") -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        n, total = con.execute(f"SELECT count(*), sum({amount}) FROM {table}").fetchone()
    return {"charges": int(n), "amount_sum": int(total)}


def child_main(spec: dict[str, Any]) -> None:
    work, url, threads, case = Path(spec["work"]), spec["base_url"], spec["threads"], spec["case"]
    if case in ("recon", "recon_before"):
        out = child_recon(url, work, threads)
    elif case == "legacy":
        out = child_legacy(url, work, threads, spec["limit"])
    else:
        out = child_dlt(url, work, threads, case)
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """One case in a fresh process in a fresh directory; adds the tree's peak RSS."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec['case']}-") as work:
        env = {
            **os.environ,
            "PYTHONPATH": str(spec.get("code", ROOT)),
            "RECON_BENCH_CODE": str(spec.get("code", ROOT)),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
        if spec["case"] != "legacy":  # the one case built on pandas
            env = production_env(env)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child"]
        cmd.append(json.dumps({**spec, "work": work}))
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        rss = TreeRss(proc.pid)
        out, err = proc.communicate()
        peak = rss.stop()
    if proc.returncode != 0:
        raise SystemExit(f"case {spec['case']} failed:\n{err[-3000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mb": peak / 2**20}


def pkg(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} (not installed)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one run of each case")
    ap.add_argument("--runs", type=int, default=3, help="runs of recon, dlt Arrow and parquet")
    ap.add_argument("--default-runs", type=int, default=2, help="runs of dlt default (~4 min)")
    ap.add_argument("--legacy-charges", type=int, default=2000, help="charges the legacy loads")
    ap.add_argument("--threads", type=int, default=2, help="fetch threads, every case")
    ap.add_argument("--markdown", type=Path, help="write the section into this file")
    ap.add_argument("--only", nargs="+", choices=list(CASES), help="run only these cases")
    ap.add_argument(
        "--against", type=Path, help="another checkout (say, a git worktree of an older commit) "
        "whose recon runs beside this one's, as 'recon_before'",
    )  # fmt: skip
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    runs = 1 if args.quick else args.runs
    plan = {
        "recon": runs,
        "dlt_arrow": runs,
        "dlt_parquet": runs,
        "dlt_default": 1 if args.quick else args.default_runs,
        "legacy": 1 if args.quick else max(1, runs - 1),
    }
    plan["recon_before"] = runs if args.against else 0
    if args.only:
        keep = {*args.only, "recon", "recon_before"}
        plan = {c: (n if c in keep else 0) for c, n in plan.items()}
    if args.against:
        head = subprocess.run(
            ["git", "-C", str(args.against), "log", "-1", "--format=%h"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        CASES["recon_before"] = f"recon at {head} (before)"
    versions = ", ".join(
        pkg(p) for p in ("dlt", "duckdb", "pyarrow", "pandas", "stripe", "requests")
    )  # fmt: skip
    load0 = os.getloadavg()
    res: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    started = time.perf_counter()
    emu = Emulator()
    try:
        for i in range(max(plan.values())):
            for case in CASES:
                if i >= plan[case]:
                    continue
                spec = {"case": case, "base_url": emu.base_url, "threads": args.threads}
                spec["limit"] = args.legacy_charges
                if case == "recon_before":
                    spec["code"] = str(args.against.resolve())
                r = run_case(spec)
                res[case].append(r)
                print(
                    f"  run {i + 1} {case}: {r['charges']:,} charges in {r['wall_s']:.1f} s "
                    f"= {r['charges'] / r['wall_s']:,.0f}/s, tree peak {r['peak_mb']:.0f} MB",
                    flush=True,
                )
    finally:
        emu.stop()

    day = res["recon"][0]
    for case in ("recon_before", "dlt_arrow", "dlt_parquet", "dlt_default"):
        for r in res[case]:
            if (r["charges"], r["amount_sum"]) != (day["charges"], day["amount_sum"]):
                raise SystemExit(f"{case} loaded other charges: {r} vs recon {day}")

    def rate(case: str) -> float:
        return statistics.median(r["charges"] / r["wall_s"] for r in res[case])

    def cell_rate(case: str) -> str:
        xs = [r["charges"] / r["wall_s"] for r in res[case]]
        return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}..{max(xs):,.0f})"

    def peak(case: str) -> float:
        return statistics.median(r["peak_mb"] for r in res[case])

    def at_8m(case: str) -> str:
        s = TARGET_CHARGES / rate(case)
        return f"{s / 60:,.0f} min" if s < 3 * 3600 else f"{s / 3600:,.1f} h"

    rows = [
        "| case | charges | runs | charges/s, median (min..max) | whole-tree peak RSS | "
        "recon's charges/s over this | 8 M charges at this rate |",
        "|---|---|---|---|---|---|---|",
    ]
    ran = [c for c in CASES if res[c]]
    for case in ran:
        ratio = "" if case == "recon" else f"{rate('recon') / rate(case):,.2f}x"
        rows.append(
            f"| {CASES[case]} | {res[case][0]['charges']:,} | {len(res[case])} | "
            f"{cell_rate(case)} | {peak(case):,.0f} MB | {ratio} | {at_8m(case)} |"
        )
    verdicts = []
    if res["dlt_arrow"]:
        vs_arrow = rate("recon") / rate("dlt_arrow")
        met = vs_arrow >= 1.5 and peak("recon") <= peak("dlt_arrow")
        verdicts.append(
            f"- recon vs dlt fed Arrow by hand: **{vs_arrow:.2f}x** its charges/s at "
            f"{peak('recon'):,.0f} vs {peak('dlt_arrow'):,.0f} MB (target >= 1.5x at <= its "
            f"memory: {'MET' if met else 'NOT MET'})."
        )
    if res["recon_before"]:
        verdicts.append(
            f"- recon now vs {CASES['recon_before']}: **{rate('recon') / rate('recon_before'):.2f}x"
            f"** the charges/s, {peak('recon'):,.0f} vs {peak('recon_before'):,.0f} MB."
        )
    if res["legacy"]:
        vs_legacy = rate("recon") / rate("legacy")
        verdicts.append(
            f"- recon vs legacy: **{vs_legacy:,.0f}x** (target >= 100x: "
            f"{'MET' if vs_legacy >= 100 else 'NOT MET'}). The legacy loaded "
            f"{res['legacy'][0]['charges']:,} charges and is extrapolated linearly; its concat "
            "is quadratic, so this ratio is a lower bound."
        )
    text = "\n".join(
        [
            f"Peers on the same {day['charges']:,} charges (one emulator day, identical pages; "
            f"every warehouse checked: same row count and sum of amounts), {args.threads} fetch "
            "threads each, each case in a fresh process, runs interleaved; whole-tree peak RSS "
            "sampled every 50 ms.",
            "",
            *rows,
            "",
            *verdicts,
            f"- Machine: {cpu_model()}, {os.cpu_count()} cores, "
            f"load {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end; Python "
            f"{platform.python_version()}; {versions}.",
        ]
    )
    print()
    print(text)
    print(f"\nbench wall time {time.perf_counter() - started:.0f} s")
    if args.markdown:
        write_section(args.markdown, "peers", text)


if __name__ == "__main__":
    main()
