"""The nightly's `dbt build` alone, with little and with much history loaded, optionally side by
side with another checkout's dbt project.

`bench_nightly.py` times the whole nightly, where the pull, the loads and dbt's start-up add
seconds of noise on a shared machine. What grows with history is mostly inside `dbt build`, so
this bench runs only that, by hand as the nightly's dbt step runs it (the local profile, one dbt
thread, `RECON_DUCKDB_MEMORY_LIMIT`, the run vars of the nightly's range), on copies of the bench
homes' warehouses (`bench_nightly.py --homes`). Each project builds its own copies: one build
first, untimed (it brings the marts up to date and records a checked build), then `--runs`
builds each re-stating the nightly's four days, alternating histories and projects so the noise
hits them alike. Printed: dbt's wall time (process start to exit), dbt's own elapsed time, per
history the ratio of the longest to the shortest run by run, and the models and tests whose time
grows most with history.

    git worktree add /tmp/before <rev>
    .venv/bin/python bench/bench_dbt_nightly.py --homes /var/tmp/recon-bench \\
        --against /tmp/before/dbt_project --runs 5                    # ~6 min
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bench_first_build import dbt_build_command
from bench_nightly import RESTATE_DAYS, machine

ROOT = Path(__file__).resolve().parents[1]


def nightly_vars(home: Path, h: int) -> dict[str, object]:
    """The run vars of the nightly `bench_nightly.py` runs on `home` (`h` days of history)."""
    from recon_assets.warehouse.dbt_vars import build_dbt_vars

    saved = json.loads((home / "bench-env.json").read_text())
    first = date.fromisoformat(saved["RECON_START_DATE"]) + timedelta(days=h)
    et = ZoneInfo("America/New_York")
    start = datetime(first.year, first.month, first.day, tzinfo=et)
    end = start + timedelta(days=RESTATE_DAYS + 1)
    return build_dbt_vars(start, end, 3, run_id="bench-dbt-nightly")


def build(
    project: Path, db: Path, work: Path, dbt_vars: dict[str, object], limit: str
) -> dict[str, object]:
    """One `dbt build` of `db` with `project`'s models, as the nightly's dbt step runs it."""
    cmd, env = dbt_build_command(project, db, work, dbt_vars, limit)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"dbt build of {db} with {project} failed:\n{proc.stdout[-3000:]}")
    results = json.loads((work / "target" / "run_results.json").read_text())
    nodes = {
        r["unique_id"].split(".")[2]: r["execution_time"]
        for r in results["results"]
        if not r["unique_id"].startswith("operation.")
    }
    return {"wall": wall, "elapsed": results["elapsed_time"], "nodes": nodes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--homes", type=Path, required=True, help="bench_nightly.py's --homes")
    ap.add_argument("--history", type=int, nargs="+", default=[30, 540])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--limit", default="256MB", help="RECON_DUCKDB_MEMORY_LIMIT for dbt")
    ap.add_argument("--against", type=Path, help="another checkout's dbt_project directory")
    ap.add_argument("--top", type=int, default=8, help="models and tests to list by growth")
    args = ap.parse_args()

    print(machine())
    projects = {"this checkout": ROOT / "dbt_project"}
    if args.against:
        projects[str(args.against)] = args.against.resolve()
    lo, hi = min(args.history), max(args.history)
    runs: dict[tuple[str, int], list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dbt-nightly-") as tmp:
        cases = []
        for name, project in projects.items():
            for h in args.history:
                work = Path(tmp) / f"{list(projects).index(name)}-h{h}"
                work.mkdir()
                db = work / "warehouse.duckdb"
                shutil.copyfile(args.homes / f"h{h}" / "warehouse.duckdb", db)
                dbt_vars = nightly_vars(args.homes / f"h{h}", h)
                build(project, db, work, dbt_vars, args.limit)  # untimed: up to date, checked
                cases.append((name, h, project, db, work, dbt_vars))
                runs[name, h] = []
        for i in range(args.runs):
            for name, h, project, db, work, dbt_vars in cases:
                r = build(project, db, work, dbt_vars, args.limit)
                runs[name, h].append(r)
                print(
                    f"  run {i + 1}, {name}, {h} days: {r['wall']:.1f} s (dbt {r['elapsed']:.1f} s)"
                )

    med = statistics.median
    print(f"\nThe nightly's dbt build, {args.runs} runs each, median (min..max):")
    for name in projects:
        for h in args.history:
            walls = [r["wall"] for r in runs[name, h]]
            el = [r["elapsed"] for r in runs[name, h]]
            print(
                f"- {name}, {h} days: {med(walls):.2f} s ({min(walls):.2f}..{max(walls):.2f}), "
                f"dbt's elapsed {med(el):.2f} s"
            )
        pairs = [a["wall"] / b["wall"] for a, b in zip(runs[name, hi], runs[name, lo], strict=True)]
        print(
            f"  {hi} vs {lo} days, run by run: {med(pairs):.2f}x ({min(pairs):.2f}..{max(pairs):.2f})"
        )
        grown = {
            n: med(r["nodes"].get(n, 0.0) for r in runs[name, hi])
            - med(r["nodes"].get(n, 0.0) for r in runs[name, lo])
            for n in runs[name, hi][0]["nodes"]
        }
        for n in sorted(grown, key=lambda n: -grown[n])[: args.top]:
            print(f"    {n}: +{grown[n]:.2f} s")
    if args.against:
        this, other = projects
        for h in args.history:
            pairs = [
                b["wall"] / a["wall"] for a, b in zip(runs[this, h], runs[other, h], strict=True)
            ]
            print(f"{other} / this checkout, {h} days: {med(pairs):.2f}x run by run")
    print(f"\n{machine()}")


if __name__ == "__main__":
    main()
